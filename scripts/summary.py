"""Write the overview page of all data sets: headline metrics, each linking to its report."""

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from msicoloc import InputError
from msicoloc import report as rp
from msicoloc.step import atomic_output, run_step

log = logging.getLogger("summary")

#: Column titles of the overview table, in the order of :func:`summary_row`'s cells.
COLUMNS = [
    "data set",
    "ion images",
    "tissue pixels",
    "clusters",
    "Hungarian accuracy",
    "ARI",
    "isotopic recall",
    "isotope pairs",
    "silhouette",
    "stability",
]


def main(summary: Path, *, datasets: list[str]) -> None:
    """Write summary.html: one row per data set, linking to results/{dataset}/report.html.

    Parameters
    ----------
    summary
        summary.html to write; each data set's metrics.json and report.html are read from
        and linked under the same folder: ``<folder>/{dataset}/``.
    datasets
        Data set ids, in the order of the sample sheet.
    """
    root = Path(summary).parent
    rows = [summary_row(name, root) for name in datasets]
    body = (
        "<h1>MSI co-localization: all data sets</h1>"
        f'<p class="sub">{len(rows)} data set{"s" * (len(rows) != 1)}; scores of the answer '
        "(clusters.tsv: the method <code>answer.method</code> names). Click a data set for its "
        "full report.</p>"
        + rp.html_table(COLUMNS, rows, numeric=[False] + [True] * (len(COLUMNS) - 1))
        + '<p class="note">Hungarian accuracy and ARI compare the clusters with the known '
        "classes and are shown only for data sets with annotations (–: none). Isotopic recall: "
        "share of isotope pairs whose two ion images share a cluster. Silhouette: cosine "
        "silhouette of the answer's clusters in the representation they were made from. "
        "Stability: ARI between the spectral clusterings the answer comes from, with the seed "
        "and with seed + 1.</p>"
        f"<footer>Generated {time.strftime('%Y-%m-%d %H:%M')} by the summary step of the "
        f'msi-coloc workflow. Method after <a href="{rp.PAPER_URL}">{rp.esc(rp.PAPER)}</a>.'
        "</footer>"
    )
    with atomic_output(summary) as tmp:
        tmp.write_text(rp.page("MSI co-localization: summary", body), encoding="utf-8")
    log.info("summary of %d data sets", len(rows))


def summary_row(name: str, root: Path) -> list[str]:
    """Formatted cells of one data set's row (link to its report first)."""
    path = root / name / "metrics.json"
    try:
        m = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "not found: run the evaluate step first") from None
    except json.JSONDecodeError as err:
        raise InputError(path, f"not valid JSON ({err.msg})") from None
    final = m.get("methods", {}).get(rp.FINAL_METHOD, {})
    sizes = final.get("cluster_sizes", [])
    used = int(np.count_nonzero(sizes)) if sizes else 0
    link = os.path.relpath(root / name / "report.html", root).replace(os.sep, "/")
    return [
        f'<a href="{rp.esc(link)}">{rp.esc(name)}</a>',
        rp.fmt(int(m.get("n_ions", 0))),
        rp.fmt(int(m.get("n_pixels_tissue", 0))),
        f"{used} of {int(m.get('n_clusters', 0))}" if sizes else rp.fmt(m.get("n_clusters")),
        rp.fmt(rp.to_float(final.get("hungarian_accuracy"))),
        rp.fmt(rp.to_float(final.get("ari"))),
        rp.fmt(rp.to_float(final.get("isotopic_recall"))),
        rp.fmt(int(m.get("n_isotope_pairs", 0))),
        rp.fmt(rp.to_float(m.get("silhouette"))),
        rp.fmt(rp.to_float(m.get("stability_ari"))),
    ]


if __name__ == "__main__":
    run_step(main, inputs=[], outputs=["summary"])
