"""Report sections about the run: header, data and parameters, wall times, exports, footer."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from msicoloc import report as rp
from msicoloc.report_data import Run


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


#: Sections in page order: the answer first (explorer, clusters), run details last.
NAV = [
    ("explore", "Explore"),
    ("clusters", "Clusters"),
    ("umap", "UMAP"),
    ("spectrum", "Mean spectrum"),
    ("metrics", "Metrics"),
    ("isotopes", "Isotopes"),
    ("training", "Training"),
    ("run", "Run and parameters"),
    ("exports", "Exports"),
]


def header(run: Run) -> str:
    """Title, one-line summary and the section links."""
    links = "".join(f'<a href="#{key}">{title}</a>' for key, title in NAV)
    source = rp.esc(_text(run.spectra_attrs.get("source_imzml", "")))
    return (
        f"<h1>MSI co-localization: {rp.esc(run.dataset)}</h1>"
        f'<p class="sub">{len(run.mz):,} ion images of <code>{source}</code> grouped into '
        f"{run.n_clusters} clusters of co-localized ions by {rp.esc(_answer_name(run.metrics))}; "
        "the self-supervised pipeline (SimCLR, spectral clustering, self-labeling) and the "
        "classical methods are compared under <a href='#metrics'>Metrics</a>.</p>"
        f"<nav>{links}</nav>"
    )


def _answer_name(metrics: dict) -> str:
    key = metrics.get("answer_method", "")
    return metrics.get("method_names", {}).get(key, key or "the answer step")


def run_section(
    run: Run, parameters: dict, benchmarks: Path | None, steps: Sequence[str] = ()
) -> str:
    """Data, parameters, software versions and wall time per step."""
    a = run.spectra_attrs
    h, w = run.full_mask.shape
    n_pix = int(a.get("n_pixels", h * w))
    tissue = int(run.full_mask.sum())
    size = run.pixel_size_um
    if np.isfinite(size).all():
        dims = (
            f"{h} × {w} pixels ({h * size[1] / 1000:.2f} × {w * size[0] / 1000:.2f} mm at "
            f"{size[0]:g} × {size[1]:g} µm)"
        )
    else:
        dims = f"{h} × {w} pixels (pixel size not given in the imzML)"
    sizes = np.bincount(run.labels, minlength=run.n_clusters)
    used = int(np.count_nonzero(sizes))
    facts = {
        "data set": rp.esc(run.dataset),
        "source file": f"<code>{rp.esc(_text(a.get('source_imzml', '?')))}</code> "
        f"({rp.esc(_text(a.get('mode', '?')))} mode, {rp.esc(_text(a.get('spectrum_type', '')))}"
        f" spectra, {rp.esc(_text(a.get('polarity', '')) or 'polarity not given')}); "
        f"UUID {rp.esc(_text(a.get('uuid', '')) or '–')}",
        "pixels": f"{n_pix:,} measured, {tissue:,} on tissue ({100 * tissue / max(n_pix, 1):.0f} %;"
        f" mask: {rp.esc(_text(run.image_attrs.get('mask_rule', '?')))})",
        "image size": dims,
        "ion images": f"{len(run.mz):,} peaks, m/z {run.mz.min():.4f}–{run.mz.max():.4f}; "
        f"normalisation {rp.esc(_text(run.image_attrs.get('normalisation', '?')))}",
        "clusters": f"{run.n_clusters} requested, {used} used; sizes "
        + ", ".join(str(int(s)) for s in sizes),
        "encoder": rp.esc(
            f"{_text(run.embed_attrs.get('encoder', '?'))} at "
            f"{_text(run.embed_attrs.get('image_size', '?'))} px, "
            f"{run.features.shape[1]} features per ion image"
        ),
    }
    torch = run.embed_attrs.get("torch")
    versions = rp.software_versions(_text(torch) if torch is not None else None)
    return (
        '<h2 id="run">The run: data, parameters, software, wall times</h2>'
        + rp.kv_table(facts)
        + "<h3>Parameters</h3>"
        + parameters_table(parameters)
        + "<h3>Software</h3>"
        + rp.kv_table({k: rp.esc(v) for k, v in versions.items()})
        + "<h3>Wall time per step</h3>"
        + wall_time_table(rp.wall_times(benchmarks, steps))
    )


def parameters_table(parameters: dict) -> str:
    """One row per config section, its keys flattened (nested ones joined by dots)."""
    if not parameters:
        return '<p class="note">Not recorded (no parameters were passed to the report).</p>'
    rows = {}
    for section, value in parameters.items():
        if isinstance(value, dict):
            flat = rp.flatten(value)
            rows[section] = " · ".join(
                f"{rp.esc(k)}&nbsp;=&nbsp;<code>{rp.esc(_json(v))}</code>" for k, v in flat.items()
            )
        else:
            rows[section] = f"<code>{rp.esc(_json(value))}</code>"
    return rp.kv_table(rows)


def _json(value: object) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def wall_time_table(times: pd.DataFrame) -> str:
    """Wall time and peak memory per step, with a bar for each step's share."""
    if times.empty:
        return '<p class="note">No benchmark files found.</p>'
    total = float(times["seconds"].sum())
    rows = []
    for step, sec, rss in times[["step", "seconds", "max_rss_mb"]].itertuples(index=False):
        share = sec / total if total > 0 else 0.0
        bar = f'<span class="bar" style="width:{240 * share:.0f}px"></span>'
        pct = f"{100 * share:.0f} %" if share >= 0.005 else "<1 %"
        rows.append([rp.esc(step), rp.duration(sec), pct, bar, rp.fmt(rss, 0)])
    rows.append(["<b>total</b>", f"<b>{rp.duration(total)}</b>", "", "", ""])
    return (
        rp.html_table(
            ["step", "wall time", "share", "", "peak memory (MB)"],
            rows,
            numeric=[False, True, True, False, True],
        )
        + '<p class="note">From the Snakemake benchmark files (<code>benchmarks/*.tsv</code>, '
        "column <code>s</code>); the report step itself is not included.</p>"
    )


def exports_section(html: Path, files: list[Path]) -> str:
    """Links to the exported files, relative to the report."""
    what = {
        "clusters.tsv": "the answer: final cluster and confidence of every ion image, with "
        "the learned pipeline's cluster beside it",
        "colocalization.tsv": "each ion's nearest ions in the learned feature space (cosine)",
        "methods.tsv": "every method's cluster per ion (and the annotation)",
        "isotopes.tsv": "the isotope pairs (Isotopes)",
        "metrics.json": "all scores (Metrics)",
        "cluster_means/": "the cluster mean images as PNG files",
        "network.graphml": "the co-localization network (Cytoscape, networkx, Gephi)",
        "cluster_members.tsv": "each cluster's members, most confident first",
    }
    items = []
    for path in files:
        name = Path(path).name
        rel = os.path.relpath(Path(path), Path(html).parent).replace(os.sep, "/")
        items.append(
            f'<li><a href="{rp.esc(rel)}"><code>{rp.esc(rel)}</code></a> — '
            f"{rp.esc(what.get(name) or what.get(name + '/', ''))}</li>"
        )
    return (
        '<h2 id="exports">Exports</h2><p>Files beside this report (tables tab-separated, '
        f"one row per ion unless noted):</p><ul>{''.join(items)}</ul>"
    )


def footer() -> str:
    """Date, workflow and the method's paper (the only external link)."""
    stamp = time.strftime("%Y-%m-%d %H:%M")
    return (
        f"<footer>Generated {stamp} by the report step of the msi-coloc workflow. Method after "
        f'<a href="{rp.PAPER_URL}">{rp.esc(rp.PAPER)}</a>. This file is self-contained: '
        "every figure is embedded; it opens offline.</footer>"
    )
