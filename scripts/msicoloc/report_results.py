"""Report sections about the results: spectrum, clusters, UMAP, training, metrics, isotopes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from msicoloc import report as rp
from msicoloc.report_data import Run
from msicoloc.step import atomic_output


def spectrum_section(run: Run, colours: list[str]) -> str:
    """The mean spectrum with the picked peaks coloured by cluster."""
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
    return '<h2 id="spectrum">Mean spectrum</h2>' + rp.figure_block(
        rp.figure_png(fig), "mean spectrum with picked peaks", caption
    )


def cluster_sections(
    run: Run,
    means: tuple[np.ndarray, np.ndarray],
    colours: list[str],
    percentile: float,
    max_thumbnails: int,
) -> tuple[dict[int, bytes], str]:
    """Cluster mean PNGs (by cluster id) and the HTML of the cluster section; ``means`` are
    the cluster mean images and sizes (:func:`msicoloc.report.cluster_means`)."""
    means, sizes = means
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
            pixel_size_um=run.figure_pixel_um,
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
        member_block(run, k, colours[k], max_thumbnails)
        for k in range(run.n_clusters)
        if sizes[k] > 0
    ]
    html = (
        '<h2 id="clusters">Clusters</h2>'
        + k_choice_block(run.k_choice)
        + f"<p>Mean image of each cluster (files <code>cluster_means/cluster_NN.png</code>); "
        f'click a tile for its member ion images.</p><p class="note">{rule}</p>'
        f'<div class="grid">{"".join(cards)}</div>{note}'
        "<h3>Member ion images</h3>"
        f'<p class="note">Thumbnails on the same colour rule, labelled by m/z, confidence '
        "(and name), most confident first; click one to explore it.</p>" + "".join(members)
    )
    return pngs, html


def k_choice_block(k_choice: dict) -> str:
    """How the number of clusters came about: given, or the parallel-analysis plot with the
    choice."""
    k = k_choice.get("n_clusters")
    if k_choice.get("chosen_by") != "parallel_analysis":
        return f'<p class="note">{k} clusters, as given (sample sheet or config).</p>'
    values, null = (np.asarray(k_choice[key]) for key in ("eigenvalues", "null_eigenvalues"))
    png = rp.figure_png(rp.parallel_analysis_figure(values, null, int(k)), dpi=100)
    return rp.figure_block(
        png,
        "eigenvalues of the ion images' correlations against those of the null",
        f"<b>n_clusters: auto</b> chose <b>{k}</b>: the number of leading eigenvalues of the "
        "ion images' correlation matrix (smoothed Pearson) above the same images with nothing "
        "co-localized (each pixel's deviation given a random sign), within "
        "<code>cluster.auto_range</code>. Each spatial pattern that several ions share adds "
        "one eigenvalue above the null; patterns too alike or too faint to stand out are "
        "counted as one or not at all. Set <code>n_clusters</code> in the sheet to override.",
        width=520,
    )


def member_block(run: Run, k: int, colour: str, max_thumbnails: int) -> str:
    """Heading and member grid of one cluster (drawn by the explorer's script from its
    thumbnails, most confident first); the members left out listed by m/z."""
    idx = np.flatnonzero(run.labels == k)
    if "confidence" in run.clusters:
        conf = run.clusters["confidence"].to_numpy(float)[idx]
        idx = idx[np.argsort(-conf, kind="stable")]
    shown, rest = idx[:max_thumbnails], idx[max_thumbnails:]
    extra = ""
    if len(rest):
        listed = ", ".join(f"{m:.4f}" for m in np.sort(run.mz[rest]))
        extra = f'<p class="note">Not shown ({len(rest)}): m/z {listed}.</p>'
    return (
        f'<h3 id="cluster-{k}">{_swatch(colour)}Cluster {k}: {len(idx)} ion images</h3>'
        f'<div class="ex-grid" data-members="{" ".join(map(str, shown))}"></div>{extra}'
    )


def _swatch(colour: str) -> str:
    return f'<span class="swatch" style="background:{colour}"></span>'


def umap_xy(run: Run, seed: int, n_neighbors: int, min_dist: float) -> np.ndarray | None:
    """The 2-D UMAP of the learned features that the report and its explorer show (None with
    fewer than 4 ion images)."""
    if len(run.features) < 4:
        return None
    return rp.umap_embedding(run.features, seed=seed, n_neighbors=n_neighbors, min_dist=min_dist)


def umap_section(
    run: Run,
    colours: list[str],
    xy: np.ndarray | None,
    seed: int,
    n_neighbors: int,
    min_dist: float,
) -> str:
    """UMAP of the learned features (``xy``, :func:`umap_xy`) by cluster (and annotation)."""
    title = '<h2 id="umap">UMAP of the learned features</h2>'
    n = len(run.features)
    if xy is None:
        return title + f'<p class="note">Too few ion images ({n}) for a UMAP.</p>'
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
    """SimCLR and self-labeling curves."""
    sim, sl = run.simclr_history, run.self_label_history
    seconds = float(sim["seconds"].sum()) if "seconds" in sim and len(sim) else float("nan")
    caption = (
        f"Left: SimCLR contrastive (NT-Xent) loss per epoch, {len(sim)} epochs"
        + (f", {rp.duration(seconds)} of training" if np.isfinite(seconds) else "")
        + "; dashed: cosine-annealed learning rate. Right: self-labeling fine-tuning, "
        f"{len(sl)} epochs after the classifier initialisation; loss on the confident images "
        "only; dashed: share of ion images whose pseudo-label passed the confidence rule. "
        "Sources: <code>model/simclr_history.tsv</code>, "
        "<code>model/self_label_history.tsv</code>."
    )
    fig = rp.training_figure(sim, sl)
    return '<h2 id="training">Training curves</h2>' + rp.figure_block(
        rp.figure_png(fig), "training curves", caption
    )


def metrics_section(run: Run) -> str:
    """Every method side by side, best per column bold; silhouette, stability."""
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
        basis + "Isotopic recall: share of the isotope pairs (below) whose two images "
        "share a cluster. Bold: best in its column (ties all bold). Every method clusters the "
        "same ion images into the same number of clusters. Agreement: adjusted Rand index "
        "between the answer and each method (1 = the same clusters, 0 = chance); where "
        "methods that score well elsewhere disagree with the answer, look at the ion images "
        "below."
    )
    silhouette = rp.fmt(rp.to_float(m.get("silhouette")))
    stability = rp.fmt(rp.to_float(m.get("stability_ari")))
    short = fewer_clusters_than_asked(m)
    if short:
        note += (
            " <b>Warning:</b> fewer non-empty clusters than the "
            f"{m.get('n_clusters')} requested: {', '.join(short)} (see the evaluate log)."
        )
    extra = {
        "silhouette (the answer)": f"{silhouette} — cosine silhouette of the answer's "
        "clusters in the representation they were made from (−1…1, higher = tighter)",
        "stability (the answer)": f"{stability} — ARI between the spectral clustering the "
        "answer comes from, with the run's seed and with seed + 1 (1 = identical)",
    }
    return (
        '<h2 id="metrics">Metrics: every method side by side</h2>'
        + rp.html_table(
            header, rows, numeric=[False] + [True] * (len(header) - 1), row_classes=classes
        )
        + f'<p class="note">{note}</p>'
        + rp.kv_table(extra)
        + disagreement_block(run)
    )


def fewer_clusters_than_asked(metrics: dict) -> list[str]:
    """'method (n)' for each method whose non-empty clusters are fewer than requested."""
    names = metrics.get("method_names", {})
    out = []
    for key, row in metrics.get("methods", {}).items():
        sizes = row.get("cluster_sizes", [])
        used = sum(1 for size in sizes if size > 0)
        if sizes and used < int(metrics.get("n_clusters", len(sizes))):
            out.append(f"{names.get(key, key)} ({used})")
    return out


def disagreement_block(run: Run, n_shown: int = 12) -> str:
    """The ion images whose partners the other methods dispute most (methods.tsv)."""
    if "disagreement" not in run.methods:
        return ""
    score = run.methods["disagreement"].to_numpy(float)
    idx = np.argsort(-score, kind="stable")[:n_shown]
    fig = rp.thumbnail_figure(
        run.stack[idx], run.mz[idx], run.mask, percentile=99.0, pixel_size_um=run.figure_pixel_um
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
    """Isotope pairs and whether each stayed in one final cluster."""
    title = '<h2 id="isotopes">Isotope pairs</h2>'
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


def write_cluster_means(folder: Path, pngs: dict[int, bytes]) -> None:
    """Write the cluster mean images as ``cluster_00.png``, ... into ``folder`` (replaced)."""
    with atomic_output(folder) as tmp:
        tmp.mkdir()
        for k, png in pngs.items():
            (tmp / f"cluster_{k:02d}.png").write_bytes(png)
        if folder.exists():  # Snakemake may have made the folder; replace it whole
            shutil.rmtree(folder)
