"""Figures and HTML for the per-data-set report and the summary page.

Everything here builds one self-contained HTML file: figures are drawn with matplotlib's
object-oriented API (no pyplot, so no global state and no display needed) and embedded as
base64 PNG ``data:`` URIs; the CSS is inline, and the only script is the explorer's own
(:mod:`msicoloc.report_explorer`), inline too.

Colour-scale rule for every image tile (cluster means and member thumbnails alike): linear
viridis from 0 to the tile's own ``percentile`` of its tissue pixels (the maximum if that
percentile is 0), values above it saturate; off-tissue pixels are grey.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import Normalize, to_hex, to_rgba
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from msicoloc.images import block_reduce

#: Grey of off-tissue pixels, distinct from the white page and from every viridis colour.
OFF_TISSUE = "#d9d9d9"
#: Colour of ion images without an annotation in the UMAP.
UNANNOTATED = "#bbbbbb"
#: The method the report is about (the workflow's answer); see scripts/evaluate.py.
FINAL_METHOD = "answer"
#: The one external link a report may hold: the method's paper (a link, never loaded).
PAPER_URL = "https://doi.org/10.1039/D1SC04077D"
PAPER = "Hu, Bindu & Laskin, Chem. Sci. 2022, 13, 90"
#: Scores shown per method, in table order, with their column titles.
SCORE_TITLES = {
    "purity": "purity",
    "hungarian_accuracy": "Hungarian accuracy",
    "ari": "ARI",
    "nmi": "NMI",
    "isotopic_recall": "isotopic recall",
}

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #222; max-width: 1180px; margin: 0 auto; padding: 0 24px 48px; }
h1 { font-size: 26px; margin: 28px 0 2px; }
h2 { font-size: 20px; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #ddd; }
h3 { font-size: 16px; margin: 22px 0 6px; }
.sub { color: #666; margin: 0 0 12px; }
nav { position: sticky; top: 0; background: #fff; padding: 6px 0; border-bottom: 1px solid #eee;
      font-size: 14px; z-index: 1; }
nav a { margin-right: 14px; color: #2a5d9f; text-decoration: none; }
a { color: #2a5d9f; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 14px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e5e5e5; text-align: left;
         vertical-align: top; }
th { background: #f5f5f5; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.final td { background: #f3f8ff; }
table.kv th { background: none; width: 210px; color: #555; font-weight: 500; }
.scroll { max-height: 460px; overflow-y: auto; display: inline-block; border: 1px solid #eee; }
.scroll table { margin: 0; }
.scroll th { position: sticky; top: 0; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: #444; font-size: 14px; max-width: 960px; margin-top: 4px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 10px; }
.grid figure { margin: 0; border: 1px solid #e5e5e5; padding: 4px; }
.grid figcaption { margin: 2px 4px; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px;
          margin-right: 5px; vertical-align: baseline; }
.yes { color: #1a7f37; } .no { color: #b42318; font-weight: 600; }
.bar { display: inline-block; height: 9px; background: #8fb3de; vertical-align: middle; }
.note { color: #666; font-size: 13px; }
code { font-size: 13px; background: #f5f5f5; padding: 0 3px; border-radius: 3px; }
footer { margin-top: 40px; color: #666; font-size: 13px; border-top: 1px solid #ddd;
         padding-top: 8px; }
"""


# --- figures and data URIs ---------------------------------------------------------------


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render ``fig`` to PNG bytes (tight bounding box)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI that embeds ``png`` in the page."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img_tag(png: bytes, alt: str, width: int | None = None) -> str:
    """An ``<img>`` holding ``png`` inline; ``width`` in CSS pixels (None = natural size)."""
    size = f' width="{width}"' if width else ""
    return f'<img src="{data_uri(png)}" alt="{html.escape(alt)}"{size}>'


def annotation_colours(n: int) -> list[str]:
    """Colours for annotation classes, from other palettes than the clusters' so that a
    shared colour is not mistaken for a cluster-class match (Dark2, tab20b, turbo)."""
    return _palette(n, "Dark2", 8, "tab20b", (0.95, 0.05))


def cluster_colours(n: int) -> list[str]:
    """One distinct colour per cluster (tab10 up to 10, tab20 up to 20, else turbo)."""
    return _palette(n, "tab10", 10, "tab20", (0.05, 0.95))


def _palette(n: int, small: str, small_n: int, medium: str, turbo_span: tuple) -> list[str]:
    """``n`` colours: the qualitative map ``small`` (``small_n`` colours), else the 20-colour
    ``medium``, else evenly spaced along turbo over ``turbo_span``."""
    if n <= small_n:
        return [to_hex(colormaps[small](i)) for i in range(n)]
    if n <= 20:
        return [to_hex(colormaps[medium](i)) for i in range(n)]
    return [to_hex(colormaps["turbo"](x)) for x in np.linspace(*turbo_span, n)]


# --- images: the colour-scale rule, cluster means, tiles ---------------------------------


def colour_limit(image: np.ndarray, mask: np.ndarray, percentile: float) -> float:
    """Top of the colour scale of one tile: ``percentile`` of its tissue pixels.

    Falls back to the maximum when that percentile is 0 (an ion seen in under 1 % of the
    pixels) and to 1 for an all-zero image, so the scale is never empty.
    """
    values = image[mask] if mask.any() else image.ravel()
    if values.size == 0:
        return 1.0
    top = float(np.percentile(values, percentile))
    if top <= 0:
        top = float(values.max())
    return top if top > 0 else 1.0


def scale_unit(image: np.ndarray, mask: np.ndarray, percentile: float) -> np.ndarray:
    """``image`` on the tile rule's 0..1 scale (clipped at 1)."""
    return np.clip(image / colour_limit(image, mask, percentile), 0.0, 1.0)


def cluster_means(
    stack: np.ndarray, mask: np.ndarray, labels: np.ndarray, n_clusters: int, percentile: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mean image of each cluster and its size (number of ion images).

    Each ion image is first put on its own 0..1 tile scale, so an intense ion does not
    outweigh the weak ones: the mean shows the shared spatial pattern, not the loudest
    member. Empty clusters give an all-zero image.
    """
    h, w = stack.shape[1:]
    means = np.zeros((n_clusters, h, w))
    sizes = np.bincount(labels, minlength=n_clusters)[:n_clusters]
    for k in np.flatnonzero(sizes):
        for i in np.flatnonzero(labels == k):
            means[k] += scale_unit(stack[i].astype(float), mask, percentile)
        means[k] /= sizes[k]
    return means, sizes


def image_extent(shape: tuple[int, int], pixel_size_um: Sequence[float]) -> tuple[list, str]:
    """imshow extent and axis unit: micrometres when the pixel size is known, else pixels."""
    h, w = shape
    sx, sy = (float(v) for v in pixel_size_um) if len(pixel_size_um) == 2 else (np.nan, np.nan)
    if np.isfinite(sx) and np.isfinite(sy) and sx > 0 and sy > 0:
        return [0, w * sx, h * sy, 0], "µm"
    return [0, w, h, 0], "px"


def nice_length(target: float) -> float:
    """The 1, 2 or 5 x 10^k at or below ``target`` (for scale bars)."""
    if target <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(target))
    return max(f for f in (1, 2, 5) if f * power <= target) * power


def cluster_mean_figure(
    mean: np.ndarray,
    mask: np.ndarray,
    *,
    cluster: int,
    size: int,
    colour: str,
    percentile: float,
    pixel_size_um: Sequence[float],
) -> Figure:
    """One cluster mean image with axes (µm or px) and a colour bar, on the tile rule."""
    top = colour_limit(mean, mask, percentile)
    extent, unit = image_extent(mean.shape, pixel_size_um)
    cmap = colormaps["viridis"].with_extremes(bad=OFF_TISSUE)
    fig = Figure(figsize=(3.0, 2.7))
    ax = fig.add_subplot()
    shown = ax.imshow(
        np.ma.masked_array(mean, ~mask),
        cmap=cmap,
        norm=Normalize(0, top),
        extent=extent,
        interpolation="nearest",
    )
    ax.set_xlabel(f"x ({unit})", fontsize=8)
    ax.set_ylabel(f"y ({unit})", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(f"cluster {cluster}: {size} ion image{'s' * (size != 1)}", fontsize=10)
    for spine in ax.spines.values():  # the cluster's colour, as in the spectrum and UMAP
        spine.set_edgecolor(colour)
        spine.set_linewidth(3)
    bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03, extend="max")
    bar.set_label("mean scaled intensity", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return fig


def thumbnail_figure(
    images: np.ndarray,
    mz: np.ndarray,
    mask: np.ndarray,
    *,
    percentile: float,
    pixel_size_um: Sequence[float],
    ncol: int = 10,
    tile_px: int = 96,
) -> Figure:
    """Member ion images as a grid of thumbnails labelled by m/z, on the tile rule.

    The tiles are assembled into one RGBA array and drawn with a single ``imshow``: one
    subplot per image would take seconds per cluster. One colour bar (0..1 of each tile's
    own scale) and one scale bar, right of the grid, serve all tiles.
    """
    n = len(images)
    h, w = images.shape[1:]
    factor = max(1, int(np.ceil(max(h, w) / tile_px)))
    small_mask = block_reduce(mask.astype(float), factor) > 0.5
    th, tw = small_mask.shape
    ncol = max(1, min(ncol, n))
    nrow = max(1, -(-n // ncol))
    inch = 0.95 / tw  # inches per mosaic pixel: a tile is 0.95 in wide whatever the image
    gap, band = max(1, round(0.07 / inch)), max(1, round(0.17 / inch))  # band: m/z label
    cell_h, cell_w = band + th + gap, tw + gap
    mosaic = np.ones((nrow * cell_h, ncol * cell_w, 4))  # white between tiles
    cmap = colormaps["viridis"]
    grey = to_rgba(OFF_TISSUE)
    for k in range(n):
        r, c = divmod(k, ncol)
        tile = block_reduce(scale_unit(images[k].astype(float), mask, percentile), factor)
        rgba = cmap(tile)
        rgba[~small_mask] = grey
        y0, x0 = r * cell_h + band, c * cell_w
        mosaic[y0 : y0 + th, x0 : x0 + tw] = rgba
    grid_w, grid_h = mosaic.shape[1] * inch, mosaic.shape[0] * inch
    side = 1.1  # inches right of the grid for the colour bar and the scale bar
    fig_w, fig_h = grid_w + side, max(grid_h, 1.4)
    fig = Figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes((0, 1 - grid_h / fig_h, grid_w / fig_w, grid_h / fig_h))
    ax.imshow(mosaic, interpolation="nearest", aspect="equal")
    ax.set_axis_off()
    for k in range(n):
        r, c = divmod(k, ncol)
        ax.text(
            c * cell_w + tw / 2,
            r * cell_h + band - 0.5,
            f"{mz[k]:.4f}",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    cb_h = min(1.6, fig_h - 0.7)
    cax = fig.add_axes(
        ((grid_w + 0.15) / fig_w, 1 - (cb_h + 0.2) / fig_h, 0.12 / fig_w, cb_h / fig_h)
    )
    bar = fig.colorbar(_viridis_mappable(), cax=cax, extend="max")
    bar.set_label(f"intensity / tile's p{percentile:g}", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    _scale_bar(fig, (grid_w + 0.15) / fig_w, 0.3 / fig_h, w, factor * inch / fig_w, pixel_size_um)
    return fig


def _viridis_mappable():
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(Normalize(0, 1), colormaps["viridis"])


def _scale_bar(
    fig: Figure, x0: float, y0: float, width_px: int, per_px: float, pixel_size_um: Sequence[float]
) -> None:
    """A black scale bar at figure position (x0, y0); ``per_px``: figure width per pixel."""
    from matplotlib.lines import Line2D

    _, unit = image_extent((1, width_px), pixel_size_um)
    um = float(pixel_size_um[0]) if unit == "µm" else 1.0
    length = nice_length(width_px * um / 3)
    x1 = x0 + length / um * per_px
    fig.add_artist(Line2D([x0, x1], [y0, y0], color="black", lw=2.5, solid_capstyle="butt"))
    label = f"{length:g} {unit}" if unit == "px" or length < 1000 else f"{length / 1000:g} mm"
    fig.text(x0, y0 - 0.02, label, fontsize=7, ha="left", va="top")


# --- spectrum, UMAP, training curves ------------------------------------------------------


def decimate_max(
    mz: np.ndarray, intensity: np.ndarray, n_bins: int = 2000
) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges and the maximum intensity in each of ``n_bins`` equal m/z bins.

    A 1-ppm grid holds millions of mostly empty bins; the maximum keeps every peak's top,
    where a mean or subsampling would lose narrow peaks.
    """
    order = np.argsort(mz, kind="stable")
    mz, intensity = mz[order], intensity[order]
    lo, hi = float(mz[0]), float(mz[-1])
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, n_bins + 1)
    bin_of = np.clip(np.searchsorted(edges, mz, side="right") - 1, 0, n_bins - 1)
    top = np.zeros(n_bins)
    starts = np.flatnonzero(np.r_[True, np.diff(bin_of) > 0])
    top[bin_of[starts]] = np.maximum.reduceat(intensity, starts)
    return edges, top


def bin_values(edges: np.ndarray, values: np.ndarray, mz: np.ndarray) -> np.ndarray:
    """The value of the bin (of :func:`decimate_max`) that each m/z falls in: a peak's height."""
    return values[np.clip(np.searchsorted(edges, mz, side="right") - 1, 0, len(values) - 1)]


def spectrum_figure(
    mz: np.ndarray,
    intensity: np.ndarray,
    peak_mz: np.ndarray,
    labels: np.ndarray,
    colours: Sequence[str],
    n_bins: int = 2000,
) -> Figure:
    """Mean spectrum with the picked peaks marked by triangles coloured by cluster."""
    edges, top = decimate_max(mz, intensity, n_bins)
    fig = Figure(figsize=(11.5, 3.8))
    ax = fig.add_subplot()
    ax.stairs(top, edges, fill=True, color="0.45", lw=0)
    height = bin_values(edges, top, peak_mz)
    lift = 0.03 * (top.max() if top.max() > 0 else 1.0)
    for k in np.unique(labels):
        sel = labels == k
        ax.scatter(
            peak_mz[sel],
            height[sel] + lift,
            marker="v",
            s=22,
            color=colours[k],
            edgecolor="none",
            label=f"cluster {k} ({int(sel.sum())})",
            zorder=3,
        )
    ax.set_xlabel("m/z")
    ax.set_ylabel("mean intensity per pixel (a.u.)")
    ax.set_ylim(0, (top.max() + 2 * lift) * 1.04)
    pad = 0.01 * (edges[-1] - edges[0])  # room for the markers of the first and last peak
    ax.set_xlim(edges[0] - pad, edges[-1] + pad)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(
        title="final cluster (ion images)",
        fontsize=8,
        title_fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.005, 1),
        frameon=False,
    )
    return fig


def umap_embedding(
    features: np.ndarray, *, seed: int, n_neighbors: int = 15, min_dist: float = 0.1
) -> np.ndarray:
    """2-D UMAP of the features (cosine, seeded); ``n_neighbors`` is capped at n - 1."""
    import warnings

    import umap  # slow import (numba): only when a report is built

    n = len(features)
    reducer = umap.UMAP(
        n_neighbors=max(2, min(n_neighbors, n - 1)),
        min_dist=min_dist,
        metric="cosine",
        random_state=seed,
        n_jobs=1,  # a seed makes UMAP single-threaded anyway; say so rather than be warned
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "n_jobs overridden", "k >= N" notes
        return reducer.fit_transform(np.asarray(features, dtype=np.float32))


def umap_figure(
    xy: np.ndarray,
    labels: np.ndarray,
    colours: Sequence[str],
    annotation: Sequence[object] | None = None,
) -> Figure:
    """UMAP coloured by final cluster and, when given, by annotation (side by side)."""
    panels = 2 if annotation is not None else 1
    fig = Figure(figsize=(5.6 * panels, 4.3), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    groups = {f"cluster {k}": (labels == k, colours[k]) for k in np.unique(labels)}
    _scatter_groups(axes[0], xy, groups, "final cluster")
    if annotation is not None:
        ann = np.array([_label_text(a) for a in annotation], dtype=object)
        names = sorted(set(ann) - {""})
        palette = annotation_colours(len(names))
        groups = {name: (ann == name, palette[i]) for i, name in enumerate(names)}
        if (ann == "").any():
            groups["not annotated"] = (ann == "", UNANNOTATED)
        _scatter_groups(axes[1], xy, groups, "annotation")
    return fig


def _label_text(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value)


def _scatter_groups(ax, xy: np.ndarray, groups: Mapping, title: str) -> None:
    for name, (sel, colour) in groups.items():
        ax.scatter(xy[sel, 0], xy[sel, 1], s=16, color=colour, label=name, edgecolor="none")
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"coloured by {title}", fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def parallel_analysis_figure(values: np.ndarray, null: np.ndarray, chosen: int) -> Figure:
    """Leading eigenvalues of the data's correlation matrix and of the null's, with the
    ``chosen`` number of patterns above the null shaded."""
    fig = Figure(figsize=(5.2, 2.6), layout="constrained")
    ax = fig.subplots()
    index = np.arange(1, len(values) + 1)
    ax.plot(index, values, "o-", color="C0", ms=3, lw=1, label="ion images")
    ax.plot(index[: len(null)], null, "s--", color="0.5", ms=3, lw=1, label="nothing co-localized")
    ax.axvspan(0.5, chosen + 0.5, color="C3", alpha=0.12, lw=0)
    ax.annotate(
        f"K = {chosen}",
        (chosen + 0.5, values[0]),
        xytext=(-6, -4),
        textcoords="offset points",
        color="C3",
        ha="right",
        va="top",
    )
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue number")
    ax.set_ylabel("eigenvalue")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7, frameon=False, loc="upper right")
    return fig


def training_figure(simclr: pd.DataFrame, self_label: pd.DataFrame) -> Figure:
    """SimCLR loss (and learning rate) and self-labeling loss (and confident share)."""
    fig = Figure(figsize=(11.5, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    _curve(left, simclr, "loss", "NT-Xent loss", "SimCLR pre-training", "C0")
    if "lr" in simclr and len(simclr):
        twin = left.twinx()
        twin.plot(simclr["epoch"], simclr["lr"], color="0.55", ls="--", lw=1)
        twin.set_ylabel("learning rate (dashed)", color="0.4")
        twin.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    _curve(right, self_label, "loss", "cross-entropy loss", "self-labeling fine-tuning", "C3")
    if "confident_share" in self_label and len(self_label):
        twin = right.twinx()
        twin.plot(
            self_label["epoch"],
            100 * self_label["confident_share"],
            color="0.55",
            ls="--",
            lw=1,
            marker=".",
        )
        twin.set_ylim(0, 105)
        twin.set_ylabel("confident images (%, dashed)", color="0.4")
    return fig


def _curve(ax, table: pd.DataFrame, column: str, ylabel: str, title: str, colour: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(table) == 0 or column not in table:
        ax.text(0.5, 0.5, "no epochs run", ha="center", va="center", transform=ax.transAxes)
        return
    ax.plot(table["epoch"], table[column], color=colour, marker="." if len(table) < 60 else "")


# --- tables ----------------------------------------------------------------------------------


def metrics_table(metrics: Mapping) -> pd.DataFrame:
    """One row per method (display names), scores as columns, in the evaluate step's order.

    Annotation scores appear only when the data set had annotations (evaluate writes them
    then); isotopic recall always.
    """
    names = metrics.get("method_names", {})
    rows = {}
    for key, row in metrics["methods"].items():
        out = {"key": key, "method": names.get(key, key)}
        sizes = row.get("cluster_sizes", [])
        out["clusters used"] = int(np.count_nonzero(sizes)) if sizes else np.nan
        for score in SCORE_TITLES:
            if score in row:
                out[score] = to_float(row[score])
        rows[key] = out
    table = pd.DataFrame(list(rows.values()))
    keep = ["key", "method", "clusters used"] + [s for s in SCORE_TITLES if s in table]
    return table[keep]


def best_flags(table: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """True where a value is its column's best (highest; ties all marked; NaN never)."""
    flags = pd.DataFrame(False, index=table.index, columns=table.columns)
    for col in columns:
        values = pd.to_numeric(table[col], errors="coerce")
        if values.notna().any():
            flags[col] = np.isclose(values, values.max(), rtol=0, atol=1e-12) & values.notna()
    return flags


def isotope_table(isotopes: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """Isotope pairs with the final cluster of each partner and whether they stayed together.

    ``index`` / ``mono_index`` in isotopes.tsv are positions in the ion order of
    ion_images.h5 and clusters.tsv.
    """
    out = isotopes.copy()
    out["mono_cluster"] = labels[isotopes["mono_index"].to_numpy(int)]
    out["cluster"] = labels[isotopes["index"].to_numpy(int)]
    out["together"] = out["mono_cluster"] == out["cluster"]
    return out.sort_values(["mono_mz", "order"], kind="stable").reset_index(drop=True)


def wall_times(
    benchmarks: Path | None, steps: Sequence[str] = (), exclude: Iterable[str] = ("report",)
) -> pd.DataFrame:
    """Wall seconds and peak memory of each step from Snakemake benchmark files.

    Rows follow ``steps`` (the workflow's pipeline order; other steps after them, by name).
    A benchmark file has one row per repeat; repeats are averaged (memory: maximum).
    Missing folder or files give an empty table. ``exclude``: steps left out (the report's
    own file is still being written, or is a previous run's).
    """
    rows = []
    files = sorted(Path(benchmarks).glob("*.tsv")) if benchmarks else []
    for path in files:
        if path.stem in exclude:
            continue
        try:
            table = pd.read_csv(path, sep="\t")
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            continue
        if "s" not in table or table.empty:
            continue
        rss = pd.to_numeric(table.get("max_rss", pd.Series(dtype=float)), errors="coerce")
        rows.append(
            {
                "step": path.stem,
                "seconds": float(pd.to_numeric(table["s"], errors="coerce").mean()),
                "max_rss_mb": float(rss.max()) if rss.notna().any() else np.nan,
            }
        )
    if not rows:
        return pd.DataFrame(columns=["step", "seconds", "max_rss_mb"])
    order = {s: i for i, s in enumerate(steps)}
    table = pd.DataFrame(rows)
    rank = table["step"].map(lambda s: order.get(s, len(order)))
    return table.assign(_rank=rank).sort_values(["_rank", "step"]).drop(columns="_rank")


def software_versions(torch_version: str | None = None) -> dict[str, str]:
    """Versions of Python and the packages that made the results (torch as recorded)."""
    import platform

    versions = {"python": platform.python_version()}
    for dist in (
        "numpy",
        "pandas",
        "h5py",
        "scikit-learn",
        "matplotlib",
        "umap-learn",
        "snakemake",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    versions["torch (embed step)"] = torch_version or "not recorded"
    return versions


def flatten(params: Mapping, prefix: str = "") -> dict[str, object]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: nested config sections as one level."""
    flat: dict[str, object] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def to_float(value: object) -> float:
    """``float(value)``, NaN for None or anything that is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


# --- HTML ------------------------------------------------------------------------------------


def esc(value: object) -> str:
    """HTML-escaped text."""
    return html.escape(str(value))


def fmt(value: object, digits: int = 3) -> str:
    """Numbers for tables: fixed decimals, '–' for missing."""
    if value is None:
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        return "–" if np.isnan(value) else f"{float(value):.{digits}f}"
    return esc(value)


def html_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    numeric: Sequence[bool] | None = None,
    row_classes: Sequence[str] | None = None,
    cls: str = "",
) -> str:
    """A table from already-formatted (escaped) cells; numeric columns right-aligned."""
    numeric = list(numeric or [False] * len(header))
    num = [' class="num"' if n else "" for n in numeric]
    head = "".join(f"<th{num[i]}>{h}</th>" for i, h in enumerate(header))
    body = []
    for r, row in enumerate(rows):
        rc = f' class="{row_classes[r]}"' if row_classes and row_classes[r] else ""
        cells = "".join(f"<td{num[i]}>{c}</td>" for i, c in enumerate(row))
        body.append(f"<tr{rc}>{cells}</tr>")
    table_cls = f' class="{cls}"' if cls else ""
    return f"<table{table_cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def kv_table(pairs: Mapping[str, str]) -> str:
    """A two-column key/value table (values already formatted)."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in pairs.items())
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def figure_block(png: bytes, alt: str, caption: str, width: int | None = None) -> str:
    """A ``<figure>`` with an inline image and its caption (caption is HTML)."""
    return f"<figure>{img_tag(png, alt, width)}<figcaption>{caption}</figcaption></figure>"


def page(title: str, body: str, css: str = "") -> str:
    """A complete HTML document with the inline stylesheet (plus ``css``)."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}{css}</style>\n</head>\n<body>\n{body}\n"
        "</body>\n</html>\n"
    )


_URL_ATTR = re.compile(r"""(?:src|href|srcset|action|poster)\s*=\s*["']?([^"'\s>]+)""", re.I)
_URL_CSS = re.compile(r"""(?:url\(\s*["']?([^"')\s]+)|@import\s+["']([^"']+))""", re.I)


def external_urls(text: str, allowed: Iterable[str] = (PAPER_URL,)) -> list[str]:
    """Every reference in ``text`` that a browser would fetch from elsewhere, or follow off
    the page: absolute URLs with any scheme but ``data:`` and protocol-relative ``//`` ones,
    minus ``allowed``. Relative paths (the exports beside the report) and ``#`` anchors are
    local and not listed.
    """
    found = []
    for match in [*_URL_ATTR.finditer(text), *_URL_CSS.finditer(text)]:
        url = next(g for g in match.groups() if g)
        if url in allowed or url.lower().startswith("data:"):
            continue
        if url.startswith("//") or re.match(r"^[a-z][a-z0-9+.-]*:", url, re.I):
            found.append(url)
    return found


def duration(seconds: float) -> str:
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
