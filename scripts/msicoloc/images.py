"""Ion images: one pass over the spectra, normalisation, hotspot clipping, tissue mask.

All ion images are extracted together while each chunk of spectra is in memory. For
processed data every centroid is looked up once among the peak windows (binary search on
the sorted window edges) and summed into its (peak, pixel) cell with ``np.bincount``; windows
that overlap are split over a few layers of disjoint windows. For continuous data a cumulative
sum along the m/z axis gives every window's sum by two lookups.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from msicoloc.io import SpectraFile

Normalisation = Literal["tic", "rms", "none"]
MaskMethod = Literal["auto", "otsu", "measured"]


def window_edges(mz: np.ndarray, tolerance_ppm: float) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive [lo, hi] m/z windows of +- ``tolerance_ppm`` around each peak."""
    mz = np.asarray(mz, dtype=float)
    tol = mz * tolerance_ppm * 1e-6
    return mz - tol, mz + tol


def disjoint_layers(lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
    """Split windows (sorted by ``lo``) into as few layers of non-overlapping windows as
    a greedy sweep gives; with well-separated peaks that is one layer."""
    layer_end: list[float] = []
    members: list[list[int]] = []
    for j in np.argsort(lo, kind="stable"):
        for k, end in enumerate(layer_end):
            if lo[j] > end:
                layer_end[k] = hi[j]
                members[k].append(int(j))
                break
        else:
            layer_end.append(hi[j])
            members.append([int(j)])
    return [np.asarray(m, dtype=np.int64) for m in members]


def extract_chunk_processed(
    mz: np.ndarray,
    intensity: np.ndarray,
    offsets: np.ndarray,
    layers: list[tuple[np.ndarray, np.ndarray]],
    n_peaks: int,
) -> np.ndarray:
    """Sum the intensities of each pixel of one chunk inside each window.

    ``layers`` holds per layer (peak ids, interleaved edges lo0, hi0', lo1, hi1', ...) where
    hi' is the next float after hi, so that a centroid exactly on hi is inside.
    Returns (n_peaks, n_pixels_in_chunk) float64.
    """
    n_pix = len(offsets) - 1
    out = np.zeros((n_peaks, n_pix))
    if len(mz) == 0:
        return out
    pixel = np.repeat(np.arange(n_pix, dtype=np.int64), np.diff(offsets))
    weights = intensity.astype(np.float64, copy=False)
    for ids, edges in layers:
        k = np.searchsorted(edges, mz, side="right")
        inside = (k & 1).astype(bool)
        slot = (k[inside] >> 1) * n_pix + pixel[inside]
        sums = np.bincount(slot, weights=weights[inside], minlength=len(ids) * n_pix)
        out[ids] += sums.reshape(len(ids), n_pix)
    return out


def extract_chunk_continuous(
    mz: np.ndarray, intensity: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Window sums for a (n_pixels, n_mz) block on a shared axis: (n_peaks, n_pixels)."""
    a = np.searchsorted(mz, lo, side="left")
    b = np.searchsorted(mz, hi, side="right")
    cs = np.zeros((intensity.shape[0], intensity.shape[1] + 1))
    np.cumsum(intensity, axis=1, out=cs[:, 1:])
    return (cs[:, b] - cs[:, a]).T


def extract(
    spectra: SpectraFile,
    peak_mz: np.ndarray,
    tolerance_ppm: float,
    *,
    max_values: int = 4_000_000,
) -> np.ndarray:
    """Raw ion intensities, (n_peaks, n_pixels) float32, pixel order as in the file."""
    lo, hi = window_edges(peak_mz, tolerance_ppm)
    n_peaks = len(lo)
    out = np.zeros((n_peaks, spectra.n_pixels), dtype=np.float32)
    layers = []
    for ids in disjoint_layers(lo, hi):
        edges = np.empty(2 * len(ids))
        edges[0::2] = lo[ids]
        edges[1::2] = np.nextafter(hi[ids], np.inf)
        layers.append((ids, edges))
    # Bound the (peaks x pixels) block that bincount fills, not just the spectra read.
    max_pixels = max(1, max_values // max(n_peaks, 1))
    for ch in spectra.iter_chunks(max_values=max_values, max_pixels=max_pixels):
        if spectra.continuous:
            block = extract_chunk_continuous(ch.mz, ch.intensity, lo, hi)
        else:
            block = extract_chunk_processed(ch.mz, ch.intensity, ch.offsets, layers, n_peaks)
        out[:, ch.start : ch.stop] = block
    return out


def normalise(values: np.ndarray, norm: Normalisation, tic: np.ndarray, rms: np.ndarray) -> None:
    """Divide every pixel (column) by its TIC or RMS, in place, rescaled by the median factor
    so intensities stay in the data's units; pixels without signal become 0."""
    if norm == "none":
        return
    factor = {"tic": tic, "rms": rms}[norm].astype(float)
    ok = factor > 0
    if not ok.any():
        values[:] = 0
        return
    scale = np.where(ok, np.median(factor[ok]) / np.where(ok, factor, 1.0), 0.0)
    values *= scale.astype(values.dtype)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> tuple[float, float]:
    """Otsu's threshold of ``values`` and its effectiveness (between-class / total variance)."""
    hist, edges = np.histogram(values, bins=bins)
    centers = (edges[:-1] + edges[1:]) / 2
    w = hist.astype(float) / max(hist.sum(), 1)
    omega = np.cumsum(w)
    mu = np.cumsum(w * centers)
    mu_t = mu[-1]
    total = float(np.sum(w * (centers - mu_t) ** 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu_t * omega - mu) ** 2 / (omega * (1 - omega))
    between = np.nan_to_num(between[:-1], nan=0.0, posinf=0.0)
    k = int(np.argmax(between))
    return float(edges[k + 1]), float(between[k] / total) if total > 0 else 0.0


def tissue_mask(
    tic: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    shape: tuple[int, int],
    method: MaskMethod = "auto",
    min_effectiveness: float = 0.8,
) -> tuple[np.ndarray, str]:
    """Boolean (H, W) mask of tissue pixels and the rule that made it.

    ``measured`` keeps every acquired pixel; ``otsu`` thresholds log TIC; ``auto`` uses Otsu
    only when log TIC is clearly bimodal (effectiveness >= ``min_effectiveness``; a unimodal
    Gaussian scores about 0.64, a uniform spread 0.75), because on an acquisition that is all
    tissue Otsu would cut the tissue in two.
    """
    mask = np.zeros(shape, dtype=bool)
    keep = tic > 0
    rule = "measured pixels with signal"
    if method != "measured" and keep.sum() > 2:
        logt = np.log10(tic[keep])
        thr, eff = otsu_threshold(logt)
        if method == "otsu" or eff >= min_effectiveness:
            keep = keep & (np.log10(np.where(tic > 0, tic, 1)) > thr)
            rule = f"Otsu on log10 TIC (threshold {10**thr:.4g}, effectiveness {eff:.2f})"
        else:
            rule = (
                f"measured pixels with signal (log TIC not bimodal, Otsu effectiveness {eff:.2f})"
            )
    mask[rows[keep], cols[keep]] = True
    return mask, rule


def clip_hotspots(values: np.ndarray, quantile: float | None) -> np.ndarray:
    """Clip each row at its ``quantile`` (over the pixels given), in place; returns the caps."""
    if quantile is None or quantile >= 1 or values.shape[1] == 0:
        return values.max(axis=1) if values.shape[1] else np.zeros(len(values))
    caps = np.quantile(values, quantile, axis=1).astype(values.dtype)
    np.minimum(values, caps[:, None], out=values)
    return caps


def to_stack(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape) -> np.ndarray:
    """(n, n_pixels) -> (n, H, W) images, 0 where no pixel was given."""
    stack = np.zeros((values.shape[0], *shape), dtype=np.float32)
    stack[:, rows, cols] = values
    return stack


def montage(
    stack: np.ndarray, mz: np.ndarray, path, *, max_images: int = 100, title: str = ""
) -> None:
    """Save a PNG grid of ion images (each scaled to its own 0..max, viridis), labelled by m/z."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(stack)
    pick = np.unique(np.linspace(0, n - 1, min(n, max_images)).round().astype(int)) if n else []
    ncol = int(np.ceil(np.sqrt(len(pick) * 1.3))) if len(pick) else 1
    nrow = int(np.ceil(len(pick) / ncol)) if len(pick) else 1
    h, w = stack.shape[1:] if n else (1, 1)
    tile_in = 1.3
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(ncol * tile_in, nrow * tile_in * h / w + 0.6), squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), pick, strict=False):
        img = stack[i]
        top = float(img.max()) or 1.0
        ax.imshow(img, cmap="viridis", vmin=0, vmax=top, interpolation="nearest")
        ax.set_title(f"{mz[i]:.4f}", fontsize=6, pad=2)
    shown = f"{len(pick)} of {n} ion images" if len(pick) < n else f"{n} ion images"
    fig.suptitle(
        f"{title} {shown} (m/z above each; colour 0..image max, viridis)".strip(), fontsize=8
    )
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)
