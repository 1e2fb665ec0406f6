"""Write one data set's self-contained HTML report and its cluster mean images."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass

import h5py
import numpy as np
import pandas as pd

from msicoloc import InputError
from msicoloc import report as rp
from msicoloc.io import SpectraFile
from msicoloc.step import atomic_output, run_step

log = logging.getLogger("report")


@dataclass
class Run:
    """Everything the report shows, read once from the step's inputs."""

    dataset: str
    spectra_attrs: dict
    mean_mz: np.ndarray
    mean_intensity: np.ndarray
    mean_kind: str
    mean_bin_ppm: float
    stack: np.ndarray
    mz: np.ndarray
    mask: np.ndarray
    image_attrs: dict
    features: np.ndarray
    embed_attrs: dict
    clusters: pd.DataFrame
    labels: np.ndarray
    n_clusters: int
    metrics: dict
    methods: pd.DataFrame
    isotopes: pd.DataFrame
    simclr_history: pd.DataFrame
    self_label_history: pd.DataFrame

    @property
    def pixel_size_um(self) -> np.ndarray:
        size = np.asarray(self.spectra_attrs.get("pixel_size_um", [np.nan, np.nan]), float)
        return size if size.shape == (2,) else np.array([np.nan, np.nan])


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
    html: Path,
    cluster_means: Path,
    *,
    parameters: dict | None = None,
    n_clusters: int | None = None,
    mz_list: str | None = None,
    benchmarks: Path | None = None,
    seed: int = 0,
    percentile: float = 99.0,
    max_thumbnails: int = 60,
    umap_n_neighbors: int = 15,
    umap_min_dist: float = 0.1,
    dataset: str = "cli",
) -> None:
    """Write report.html (one file, figures embedded) and one PNG per cluster mean image.

    Parameters
    ----------
    spectra
        spectra.h5 (mean spectrum, pixel count, image shape, pixel size, source file).
    images
        ion_images.h5 (images, mz, mask).
    embeddings
        embeddings.h5 (features of the SimCLR encoder; torch version as an attribute).
    clusters
        clusters.tsv: final cluster of each ion image (columns mz, cluster, confidence).
    metrics
        metrics.json from the evaluate step.
    methods_table
        methods.tsv: every method's cluster per ion, and the annotation when there is one.
    isotopes
        isotopes.tsv: isotope pairs (index and mono_index refer to the ion order).
    colocalization
        colocalization.tsv: linked from the report, not read.
    simclr_history
        model/simclr_history.tsv (epoch, loss, lr, seconds).
    self_label_history
        model/self_label_history.tsv (epoch, loss, confident_share).
    html
        report.html to write.
    cluster_means
        Folder to write, with cluster_00.png, cluster_01.png, ... (non-empty clusters).
    parameters
        The configuration used, shown in the report (from the command line: a JSON object).
    n_clusters
        The data set's number of clusters (the sample sheet may override the config's).
    mz_list
        The data set's m/z list file, if any (the sample sheet may override the config's).
    benchmarks
        Folder of the data set's Snakemake benchmark files (wall time per step).
    seed
        Random state of the UMAP.
    percentile
        Each image tile is coloured from 0 to this percentile of its tissue pixels.
    max_thumbnails
        At most this many member thumbnails per cluster (most confident first).
    umap_n_neighbors
        UMAP neighbours (capped at the number of ion images - 1).
    umap_min_dist
        UMAP minimum distance between embedded points.
    dataset
        Data set id, for the title and messages.
    """
    start = time.perf_counter()
    shown = dataset_parameters(parameters, n_clusters=n_clusters, mz_list=mz_list)
    run = load_run(
        dataset,
        spectra=spectra,
        images=images,
        embeddings=embeddings,
        clusters=clusters,
        metrics=metrics,
        methods_table=methods_table,
        isotopes=isotopes,
        simclr_history=simclr_history,
        self_label_history=self_label_history,
    )
    colours = rp.cluster_colours(run.n_clusters)
    means_png, sections = cluster_sections(run, colours, percentile, max_thumbnails)
    body = [
        header(run),
        run_section(run, shown, benchmarks),
        spectrum_section(run, colours),
        sections,
        umap_section(run, colours, seed, umap_n_neighbors, umap_min_dist),
        training_section(run),
        metrics_section(run),
        isotope_section(run),
        exports_section(
            html,
            {
                "clusters.tsv": clusters,
                "colocalization.tsv": colocalization,
                "methods.tsv": methods_table,
                "isotopes.tsv": isotopes,
                "metrics.json": metrics,
                "cluster_means/": cluster_means,
            },
        ),
        footer(),
    ]
    text = rp.page(f"MSI co-localization report: {dataset}", "\n".join(body))
    with atomic_output(cluster_means) as tmp:
        tmp.mkdir()
        for k, png in means_png.items():
            (tmp / f"cluster_{k:02d}.png").write_bytes(png)
        if cluster_means.exists():  # Snakemake may have made the folder; replace it whole
            shutil.rmtree(cluster_means)
    with atomic_output(html) as tmp:
        tmp.write_text(text, encoding="utf-8")
    log.info(
        "report of %d ion images, %d clusters: %.1f MB in %.1f s",
        len(run.mz),
        run.n_clusters,
        len(text) / 1e6,
        time.perf_counter() - start,
    )


# --- reading -----------------------------------------------------------------------------


def dataset_parameters(
    parameters: dict | str | None, *, n_clusters: int | None, mz_list: str | None
) -> dict:
    """The config sections to show, with the values the sample sheet set for this data set."""
    shown = json.loads(parameters) if isinstance(parameters, str) else dict(parameters or {})
    for section, key, value in (
        ("cluster", "n_clusters", n_clusters),
        ("peaks", "mz_list", mz_list),
    ):
        if value is not None:  # None: not given (command line), keep the config's value
            shown[section] = {**shown.get(section, {}), key: value}
    return shown


def load_run(
    dataset: str,
    *,
    spectra: Path,
    images: Path,
    embeddings: Path,
    clusters: Path,
    metrics: Path,
    methods_table: Path,
    isotopes: Path,
    simclr_history: Path,
    self_label_history: Path,
) -> Run:
    """Read and cross-check the inputs (the ion order must agree everywhere)."""
    with SpectraFile(spectra) as sf:
        mean_mz, mean_int, _, kind = sf.mean_spectrum()
        attrs = dict(sf.attrs)
        bin_ppm = float(sf.h5["mean_spectrum"].attrs.get("bin_ppm", 0.0))
    with h5py.File(images, "r") as f:
        stack, mz, mask = f["images"][()], f["mz"][()], f["mask"][()].astype(bool)
        image_attrs = dict(f.attrs)
    with h5py.File(embeddings, "r") as f:
        features = f["features"][()]
        embed_attrs = dict(f.attrs)
    table = pd.read_csv(clusters, sep="\t")
    if len(table) != len(mz) or not np.allclose(table["mz"], mz, rtol=1e-8):
        raise InputError(clusters, "its mz column does not match the ion images")
    if len(features) != len(mz):
        raise InputError(embeddings, f"{len(features)} feature rows for {len(mz)} ion images")
    labels = table["cluster"].to_numpy(int)
    scores = json.loads(Path(metrics).read_text())
    n_clusters = max(int(scores.get("n_clusters", 0)), int(labels.max()) + 1)
    return Run(
        dataset=dataset,
        spectra_attrs=attrs,
        mean_mz=mean_mz,
        mean_intensity=mean_int,
        mean_kind=kind,
        mean_bin_ppm=bin_ppm,
        stack=stack,
        mz=mz,
        mask=mask,
        image_attrs=image_attrs,
        features=features,
        embed_attrs=embed_attrs,
        clusters=table,
        labels=labels,
        n_clusters=n_clusters,
        metrics=scores,
        methods=pd.read_csv(methods_table, sep="\t"),
        isotopes=pd.read_csv(isotopes, sep="\t"),
        simclr_history=pd.read_csv(simclr_history, sep="\t"),
        self_label_history=pd.read_csv(self_label_history, sep="\t"),
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- sections ----------------------------------------------------------------------------

NAV = [
    ("run", "Run"),
    ("spectrum", "Mean spectrum"),
    ("clusters", "Clusters"),
    ("umap", "UMAP"),
    ("training", "Training"),
    ("metrics", "Metrics"),
    ("isotopes", "Isotopes"),
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
        f"classical methods are compared in section 6.</p><nav>{links}</nav>"
    )


def _answer_name(metrics: dict) -> str:
    key = metrics.get("answer_method", "")
    return metrics.get("method_names", {}).get(key, key or "the answer step")


def run_section(run: Run, parameters: dict, benchmarks: Path | None) -> str:
    """Section 1: data, parameters, software versions and wall time per step."""
    a = run.spectra_attrs
    h, w = run.mask.shape
    n_pix = int(a.get("n_pixels", h * w))
    tissue = int(run.mask.sum())
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
        '<h2 id="run">1. The run</h2>'
        + rp.kv_table(facts)
        + "<h3>Parameters</h3>"
        + parameters_table(parameters)
        + "<h3>Software</h3>"
        + rp.kv_table({k: rp.esc(v) for k, v in versions.items()})
        + "<h3>Wall time per step</h3>"
        + wall_time_table(rp.wall_times(benchmarks))
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
        rows.append([rp.esc(step), _duration(sec), pct, bar, rp.fmt(rss, 0)])
    rows.append(["<b>total</b>", f"<b>{_duration(total)}</b>", "", "", ""])
    return (
        rp.html_table(
            ["step", "wall time", "share", "", "peak memory (MB)"],
            rows,
            numeric=[False, True, True, False, True],
        )
        + '<p class="note">From the Snakemake benchmark files (<code>benchmarks/*.tsv</code>, '
        "column <code>s</code>); the report step itself is not included.</p>"
    )


def _duration(seconds: float) -> str:
    """12.3 s, 4 min 26 s or 1:02:03."""
    if not np.isfinite(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    return (
        f"{minutes // 60}:{minutes % 60:02d}:{sec:02d}"
        if minutes >= 60
        else f"{minutes} min {sec:02d} s"
    )


def spectrum_section(run: Run, colours: list[str]) -> str:
    """Section 2: the mean spectrum with the picked peaks coloured by cluster."""
    fig = rp.spectrum_figure(run.mean_mz, run.mean_intensity, run.mz, run.labels, colours)
    if run.mean_kind == "ppm_grid":
        binning = (
            f"centroids summed in {run.mean_bin_ppm:g}-ppm bins and divided by the number of pixels"
        )
    else:
        binning = "the mean over all pixels on the instrument's m/z axis"
    caption = (
        f"Mean spectrum of all {int(run.spectra_attrs.get('n_pixels', 0)):,} pixels ({binning}),"
        " drawn as the highest value in each of 2,000 equal m/z bins so that no peak is lost at"
        f" this width. Triangles: the {len(run.mz):,} picked peaks (one ion image each), "
        "coloured by final cluster; intensity in the instrument's arbitrary units, before "
        "per-pixel normalisation."
    )
    return '<h2 id="spectrum">2. Mean spectrum</h2>' + rp.figure_block(
        rp.figure_png(fig), "mean spectrum with picked peaks", caption
    )


def cluster_sections(
    run: Run, colours: list[str], percentile: float, max_thumbnails: int
) -> tuple[dict[int, bytes], str]:
    """Cluster mean PNGs (by cluster id) and the HTML of the cluster section."""
    means, sizes = rp.cluster_means(run.stack, run.mask, run.labels, run.n_clusters, percentile)
    rule = (
        f"Colour scale, the same for every tile: linear viridis from 0 to the tile's own "
        f"{percentile:g}th percentile of its tissue pixels (its maximum if that percentile is "
        "0); brighter values saturate. Grey: off tissue. A cluster mean is the average of its "
        f"member ion images after each was divided by its own {percentile:g}th percentile, so "
        "every ion counts equally; the colour bar gives that mean's values (0–1)."
    )
    pngs: dict[int, bytes] = {}
    cards = []
    for k in range(run.n_clusters):
        if sizes[k] == 0:
            continue
        fig = rp.cluster_mean_figure(
            means[k],
            run.mask,
            cluster=k,
            size=int(sizes[k]),
            colour=colours[k],
            percentile=percentile,
            pixel_size_um=run.pixel_size_um,
        )
        pngs[k] = rp.figure_png(fig, dpi=110)
        cards.append(
            f'<figure><a href="#cluster-{k}">{rp.img_tag(pngs[k], f"cluster {k} mean image")}'
            f"</a><figcaption>{_swatch(colours[k])}cluster {k}: {sizes[k]} ion images · "
            f'<a href="#cluster-{k}">members</a></figcaption></figure>'
        )
    empty = [str(k) for k in range(run.n_clusters) if sizes[k] == 0]
    note = f'<p class="note">Empty clusters: {", ".join(empty)}.</p>' if empty else ""
    members = [
        member_block(run, k, colours[k], percentile, max_thumbnails)
        for k in range(run.n_clusters)
        if sizes[k] > 0
    ]
    html = (
        '<h2 id="clusters">3. Clusters</h2>'
        f"<p>Mean image of each cluster (files <code>cluster_means/cluster_NN.png</code>); "
        f'click a tile for its member ion images.</p><p class="note">{rule}</p>'
        f'<div class="grid">{"".join(cards)}</div>{note}'
        "<h3>Member ion images</h3>"
        f'<p class="note">Thumbnails on the same colour rule (colour bar: fraction of each '
        f"tile's {percentile:g}th percentile), labelled by m/z, most confident first;"
        " the scale bar right of each grid gives the tiles' size.</p>" + "".join(members)
    )
    return pngs, html


def member_block(run: Run, k: int, colour: str, percentile: float, max_thumbnails: int) -> str:
    """Heading and thumbnails of one cluster's members; the ones left out listed by m/z."""
    idx = np.flatnonzero(run.labels == k)
    if "confidence" in run.clusters:
        conf = run.clusters["confidence"].to_numpy(float)[idx]
        idx = idx[np.argsort(-conf, kind="stable")]
    shown, rest = idx[:max_thumbnails], idx[max_thumbnails:]
    fig = rp.thumbnail_figure(
        run.stack[shown],
        run.mz[shown],
        run.mask,
        percentile=percentile,
        pixel_size_um=run.pixel_size_um,
    )
    extra = ""
    if len(rest):
        listed = ", ".join(f"{m:.4f}" for m in np.sort(run.mz[rest]))
        extra = f'<p class="note">Not shown ({len(rest)}): m/z {listed}.</p>'
    return (
        f'<h3 id="cluster-{k}">{_swatch(colour)}Cluster {k}: {len(idx)} ion images</h3>'
        f"{rp.img_tag(rp.figure_png(fig), f'cluster {k} member ion images')}{extra}"
    )


def _swatch(colour: str) -> str:
    return f'<span class="swatch" style="background:{colour}"></span>'


def umap_section(run: Run, colours: list[str], seed: int, n_neighbors: int, min_dist: float) -> str:
    """Section 4: UMAP of the learned features by cluster (and by annotation)."""
    title = '<h2 id="umap">4. UMAP of the learned features</h2>'
    n = len(run.features)
    if n < 4:
        return title + f'<p class="note">Too few ion images ({n}) for a UMAP.</p>'
    xy = rp.umap_embedding(run.features, seed=seed, n_neighbors=n_neighbors, min_dist=min_dist)
    annotation = None
    if "annotation" in run.methods and run.methods["annotation"].notna().any():
        annotation = run.methods["annotation"].tolist()
    fig = rp.umap_figure(xy, run.labels, colours, annotation)
    caption = (
        f"Each point is one ion image: UMAP (cosine distance, n_neighbors = "
        f"{max(2, min(n_neighbors, n - 1))}, min_dist = {min_dist:g}, random_state = {seed}) of "
        f"its {run.features.shape[1]} features from the SimCLR encoder (embeddings.h5), "
        "coloured by final cluster"
        + (" and by the known annotation." if annotation is not None else ".")
        + " UMAP keeps neighbourhoods, not distances: gaps between groups are not to scale."
    )
    return title + rp.figure_block(rp.figure_png(fig), "UMAP of the learned features", caption)


def training_section(run: Run) -> str:
    """Section 5: SimCLR and self-labeling curves."""
    sim, sl = run.simclr_history, run.self_label_history
    seconds = float(sim["seconds"].sum()) if "seconds" in sim and len(sim) else float("nan")
    caption = (
        f"Left: SimCLR contrastive (NT-Xent) loss per epoch, {len(sim)} epochs"
        + (f", {_duration(seconds)} of training" if np.isfinite(seconds) else "")
        + "; dashed: cosine-annealed learning rate. Right: self-labeling fine-tuning, "
        f"{len(sl)} epochs after the classifier initialisation; loss on the confident images "
        "only; dashed: share of ion images whose pseudo-label passed the confidence rule. "
        "Sources: <code>model/simclr_history.tsv</code>, "
        "<code>model/self_label_history.tsv</code>."
    )
    fig = rp.training_figure(sim, sl)
    return '<h2 id="training">5. Training curves</h2>' + rp.figure_block(
        rp.figure_png(fig), "training curves", caption
    )


def metrics_section(run: Run) -> str:
    """Section 6: every method side by side, best per column bold; silhouette, stability."""
    m = run.metrics
    table = rp.metrics_table(m)
    scores = [c for c in rp.SCORE_TITLES if c in table]
    bold = rp.best_flags(table, scores)
    agree = m.get("agreement_ari", {})
    rows, classes = [], []
    for i, row in table.iterrows():
        name = rp.esc(row["method"]) + (" <b>(final)</b>" if row["key"] == rp.FINAL_METHOD else "")
        cells = [name, rp.fmt(row["clusters used"])]
        for c in scores:
            text = rp.fmt(row[c])
            cells.append(f"<b>{text}</b>" if bold.loc[i, c] else text)
        cells.append("–" if row["key"] == rp.FINAL_METHOD else rp.fmt(agree.get(row["key"])))
        rows.append(cells)
        classes.append("final" if row["key"] == rp.FINAL_METHOD else "")
    header = [
        "method",
        "clusters used",
        *(rp.SCORE_TITLES[c] for c in scores),
        "agreement with answer (ARI)",
    ]
    annotated = "purity" in scores
    if annotated:
        basis = (
            f"Purity, Hungarian accuracy, ARI and NMI against the known classes of the "
            f"{m.get('n_annotated', 0):,} ion images matched to an annotation "
            f"(of {m.get('n_annotation_rows', 0):,} annotation rows). "
        )
    else:
        basis = "No annotations for this data set: only the label-free scores are shown. "
    note = (
        basis + "Isotopic recall: share of the isotope pairs (section 7) whose two images "
        "share a cluster. Bold: best in its column (ties all bold). Every method clusters the "
        "same ion images into the same number of clusters. Agreement: adjusted Rand index "
        "between the answer and each method (1 = the same clusters, 0 = chance); where "
        "methods that score well elsewhere disagree with the answer, look at the ion images "
        "below."
    )
    silhouette = rp.fmt(rp.to_float(m.get("silhouette")))
    stability = rp.fmt(rp.to_float(m.get("stability_ari")))
    extra = {
        "silhouette (self-labeled clusters)": f"{silhouette} — cosine silhouette of the "
        "self-labeled clusters "
        "in the learned feature space (−1…1, higher = tighter)",
        "stability (SimCLR + SC)": f"{stability} — ARI between the spectral clustering with "
        "the run's seed and with seed + 1 (1 = identical)",
    }
    return (
        '<h2 id="metrics">6. Metrics</h2>'
        + rp.html_table(
            header, rows, numeric=[False] + [True] * (len(header) - 1), row_classes=classes
        )
        + f'<p class="note">{note}</p>'
        + rp.kv_table(extra)
        + disagreement_block(run)
    )


def disagreement_block(run: Run, n_shown: int = 12) -> str:
    """The ion images whose partners the other methods dispute most (methods.tsv)."""
    if "disagreement" not in run.methods:
        return ""
    score = run.methods["disagreement"].to_numpy(float)
    idx = np.argsort(-score, kind="stable")[:n_shown]
    fig = rp.thumbnail_figure(
        run.stack[idx], run.mz[idx], run.mask, percentile=99.0, pixel_size_um=run.pixel_size_um
    )
    listed = ", ".join(f"{run.mz[i]:.4f} ({score[i]:.2f})" for i in idx)
    return (
        "<h3>Where the methods disagree</h3>"
        f"{rp.img_tag(rp.figure_png(fig), 'ion images the methods disagree on')}"
        '<p class="note">The ion images whose cluster mates differ most between the answer and '
        "the other methods (1 - Jaccard index of the mates, averaged over the methods; column "
        f"<code>disagreement</code> of methods.tsv): m/z (score) {listed}. A real data set "
        "without annotations is judged here: check these images by eye.</p>"
    )


def isotope_section(run: Run) -> str:
    """Section 7: isotope pairs and whether each stayed in one final cluster."""
    title = '<h2 id="isotopes">7. Isotope pairs</h2>'
    if run.isotopes.empty:
        return title + "<p>No isotope pairs were found among the picked peaks.</p>"
    iso = rp.isotope_table(run.isotopes, run.labels)
    together = int(iso["together"].sum())
    rows = []
    for r in iso.itertuples(index=False):
        mark = '<span class="yes">yes</span>' if r.together else '<span class="no">no</span>'
        rows.append(
            [
                f"{r.mono_mz:.4f}",
                f"{r.mz:.4f}",
                f"M+{int(r.order)}",
                str(int(getattr(r, "charge", 1))),
                f"{r.ppm_error:+.2f}",
                f"{r.correlation:.3f}",
                str(r.mono_cluster),
                str(r.cluster),
                mark,
            ]
        )
    header = [
        "monoisotopic m/z",
        "isotope m/z",
        "isotope",
        "z",
        "error (ppm)",
        "image correlation",
        "cluster (mono)",
        "cluster (isotope)",
        "together",
    ]
    return (
        title
        + f"<p>{together} of {len(iso)} isotope pairs ({100 * together / len(iso):.0f} %) stayed "
        "in the same final cluster. Pairs are peaks spaced by 1.00336/z (¹³C) within the "
        "configured ppm tolerance whose images correlate; error: deviation from that spacing.</p>"
        + '<div class="scroll">'
        + rp.html_table(header, rows, numeric=[True] * 8 + [False])
        + "</div>"
    )


def exports_section(html: Path, files: dict[str, Path]) -> str:
    """Links to the exported files, relative to the report."""
    what = {
        "clusters.tsv": "the answer: final cluster and confidence of every ion image, with "
        "the learned pipeline's cluster beside it",
        "colocalization.tsv": "each ion's nearest ions in the learned feature space (cosine)",
        "methods.tsv": "every method's cluster per ion (and the annotation)",
        "isotopes.tsv": "the isotope pairs of section 7",
        "metrics.json": "all scores of section 6",
        "cluster_means/": "the cluster mean images as PNG files",
    }
    items = []
    for name, path in files.items():
        rel = os.path.relpath(Path(path), Path(html).parent).replace(os.sep, "/")
        items.append(
            f'<li><a href="{rp.esc(rel)}"><code>{rp.esc(rel)}</code></a> — '
            f"{rp.esc(what.get(name, ''))}</li>"
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


if __name__ == "__main__":
    run_step(
        main,
        inputs=[
            "spectra",
            "images",
            "embeddings",
            "clusters",
            "metrics",
            "methods_table",
            "isotopes",
            "colocalization",
            "simclr_history",
            "self_label_history",
        ],
        outputs=["html", "cluster_means"],
    )
