"""Write one data set's self-contained HTML report and its cluster mean images."""

import logging
import time
from pathlib import Path

from msicoloc import report as rp
from msicoloc import report_explorer as explorer
from msicoloc.report_data import dataset_parameters, load_run, read_colocalization
from msicoloc.report_overview import exports_section, footer, header, run_section
from msicoloc.report_results import (
    cluster_sections,
    isotope_section,
    metrics_section,
    spectrum_section,
    training_section,
    umap_section,
    umap_xy,
    write_cluster_means,
)
from msicoloc.settings import ReportSettings
from msicoloc.step import atomic_output, run_step

log = logging.getLogger("report")

INPUTS = "spectra images embeddings clusters metrics methods_table isotopes".split()
INPUTS += ["colocalization", "simclr_history", "self_label_history", "k_choice"]


def main(
    spectra: Path,
    images: Path,
    embeddings: Path,
    clusters: Path,
    metrics: Path,
    methods_table: Path,
    isotopes: Path,
    colocalization: Path,
    simclr_history: Path,
    self_label_history: Path,
    k_choice: Path,
    html: Path,
    cluster_means: Path,
    *,
    parameters: dict | None = None,
    n_clusters: int | None = None,
    mz_list: str | None = None,
    benchmarks: Path | None = None,
    steps: list[str] | None = None,
    settings: ReportSettings,
    seed: int,
    dataset: str = "cli",
) -> None:
    """Write report.html (one file, figures embedded) and one PNG per cluster mean image.

    ``parameters`` is the configuration shown in the report (a JSON object from the command
    line), with the data set's ``n_clusters`` and ``mz_list`` from the sample sheet;
    ``benchmarks`` is the folder of Snakemake's benchmark files (wall time per step, listed
    in the pipeline order ``steps``);
    ``colocalization`` gives the explorer each ion's partners.
    """
    start = time.perf_counter()
    shown = dataset_parameters(parameters, n_clusters=n_clusters, mz_list=mz_list)
    run = load_run(
        dataset,
        spectra,
        images,
        embeddings,
        clusters,
        metrics,
        methods_table,
        isotopes,
        simclr_history,
        self_label_history,
        k_choice,
    )
    colours = rp.cluster_colours(run.n_clusters)
    means = rp.cluster_means(run.stack, run.mask, run.labels, run.n_clusters, settings.percentile)
    means_png, sections = cluster_sections(
        run, means, colours, settings.percentile, settings.max_thumbnails
    )
    umap = (seed, settings.umap_n_neighbors, settings.umap_min_dist)
    xy = umap_xy(run, *umap)
    partners = read_colocalization(colocalization, run.mz)
    data = explorer.payload(run, partners, xy, means, colours, settings.percentile)
    body = [  # the answer first: explorer and clusters; how it was made below
        header(run),
        explorer.section(data),
        sections,
        umap_section(run, colours, xy, *umap),
        spectrum_section(run, colours),
        metrics_section(run),
        isotope_section(run),
        training_section(run),
        run_section(run, shown, benchmarks, steps or []),
        exports_section(
            html,
            [
                clusters,
                colocalization,
                methods_table,
                isotopes,
                metrics,
                cluster_means,
                html.parent / "network.graphml",
                html.parent / "cluster_members.tsv",
            ],
        ),
        footer(),
    ]
    text = rp.page(f"MSI co-localization report: {dataset}", "\n".join(body), explorer.CSS)
    write_cluster_means(cluster_means, means_png)
    with atomic_output(html) as tmp:
        tmp.write_text(text, encoding="utf-8")
    log.info(
        "report of %d ion images, %d clusters: %.1f MB in %.1f s",
        len(run.mz),
        run.n_clusters,
        len(text) / 1e6,
        time.perf_counter() - start,
    )


if __name__ == "__main__":
    run_step(main, inputs=INPUTS, outputs=["html", "cluster_means"])
