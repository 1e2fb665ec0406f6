"""Ion images: one pass over the spectra, normalisation, hotspot clipping, tissue mask.

All ion images are extracted together while each chunk of spectra is in memory. For
processed data every centroid is looked up once among the peak windows (a table lookup, see
:class:`WindowLookup`) and summed into its (peak, pixel) cell with ``np.bincount``. For
continuous data a cumulative sum along the m/z axis gives every window's sum by two lookups.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import h5py
import numpy as np

from msicoloc import InputError
from msicoloc.imzml import Chunk
from msicoloc.settings import IonImageSettings
from msicoloc.spectra import SpectraFile, overlapped

Normalisation = Literal["tic", "rms", "none"]
MaskMethod = Literal["auto", "otsu", "measured"]


def read_ion_images(
    path: str | os.PathLike[str], level: Literal["full", "small"] = "full"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read ``images`` (n, H, W), ``mz`` (n,) and ``mask`` (H, W) from an ion-image HDF5 file.

    Parameters
    ----------
    path
        ``ion_images.h5`` written by the image extraction step.
    level
        ``full`` resolution, or the ``small`` level (longest side at most
        :data:`SMALL_SIDE`) that the learning steps and the report read, so that no step
        but ``ion_images`` holds a full-resolution stack. A file without a small level
        (written by hand) gives its full images.
    """
    names = {"full": ("images", "mask"), "small": ("images_small", "mask_small")}[level]
    try:
        with h5py.File(path, "r") as f:
            if names[0] not in f and level == "small":  # images small enough to be their own
                names = ("images", "mask")
            missing = [k for k in (names[0], "mz") if k not in f]
            if missing:
                raise InputError(path, f"no dataset {missing[0]!r} (not an ion-image file?)")
            images = np.asarray(f[names[0]][()], dtype=np.float32)
            mz = np.asarray(f["mz"][()], dtype=np.float64)
            mask = np.asarray(f[names[1]][()], dtype=bool) if names[1] in f else None
    except OSError as err:
        raise InputError(path, f"cannot read HDF5 ({err})") from None
    if images.ndim != 3 or mz.shape != (images.shape[0],):
        raise InputError(path, f"images {images.shape} and mz {mz.shape} do not match")
    if mask is None:
        mask = np.ones(images.shape[1:], dtype=bool)
    elif mask.shape != images.shape[1:]:
        raise InputError(path, f"mask {mask.shape} does not match images {images.shape[1:]}")
    return images, mz, mask


def check_ion_mz(path: str | os.PathLike[str], table_mz: np.ndarray, mz: np.ndarray) -> None:
    """Stop unless a per-ion table (``path``) lists exactly the ion images' m/z, in order.

    Tables round m/z to 6 decimals: anything further off is another peak list (a stale
    result of an earlier run).
    """
    table_mz = np.asarray(table_mz, dtype=float)
    if len(table_mz) != len(mz) or not np.allclose(table_mz, mz, rtol=0, atol=1e-6):
        raise InputError(
            path,
            f"its {len(table_mz)} m/z values are not those of the {len(mz)} ion images "
            "(stale result of an earlier run?)",
        )


def read_ion_mz(path: str | os.PathLike[str]) -> np.ndarray:
    """The m/z of the ion images of an ion_images.h5, in their order."""
    try:
        with h5py.File(path, "r") as f:
            return np.asarray(f["mz"][()], dtype=np.float64)
    except (OSError, KeyError) as err:
        raise InputError(path, f"cannot read the ion images' m/z ({err})") from None


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """The full-resolution tissue mask (H, W) of an ion_images.h5."""
    with h5py.File(path, "r") as f:
        return np.asarray(f["mask"][()], dtype=bool)


def ion_image_attrs(path: str | os.PathLike[str]) -> dict:
    """The attributes of an ion_images.h5 (extraction settings, mask rule, source file)."""
    with h5py.File(path, "r") as f:
        return dict(f.attrs)


#: Longest side of the small level stored beside the full-resolution images: the encoder
#: (32 px by default, 224 px in the paper preset) and the report's tiles never need more.
SMALL_SIDE = 256
#: Bytes of image data a step holds at once: blocks of ions while building the images, blocks
#: of images or pixels in the blockwise Gram matrices (msicoloc.baselines). Bounds memory.
BLOCK_BYTES = 256 * 2**20
#: Rows of an image in one stored chunk of ion_images.h5 (16 images x 16 rows x 256 columns).
CHUNK_ROWS = 16


def small_factor(shape: tuple[int, int]) -> int:
    """Integer block size that brings an image's longest side to at most :data:`SMALL_SIDE`."""
    return max(1, -(-max(shape) // SMALL_SIDE))


def build_ion_images(
    spectra: SpectraFile,
    peak_mz: np.ndarray,
    window_ppm: float,
    settings: IonImageSettings,
    path: str | os.PathLike[str],
    *,
    max_values: int,
    **attrs: object,
) -> dict:
    """Extract, normalise, mask and clip every ion image and write ion_images.h5 atomically.

    ``window_ppm`` is the half window of every ion (see :func:`msicoloc.peaks.data_window_ppm`);
    ``attrs`` go to the file's attributes.

    Memory does not grow with pixels x ions: the raw intensities go to a temporary file when
    they exceed :data:`BLOCK_BYTES` (else they stay in memory), then blocks of whole ions are
    normalised, clipped, written at full resolution (chunked, compressed) and block-averaged
    into the small level (:func:`small_factor`).

    Returns
    -------
    dict
        ``mask`` (H, W), ``rule`` (how the mask was made), ``clip_value`` per ion, ``tissue``
        pixel count and ``preview``: the small level of up to ``settings.montage_max`` ions
        evenly spread over m/z with their indices (for the montage).
    """
    from msicoloc.step import atomic_output

    rows, cols = spectra.pixels("row"), spectra.pixels("col")
    tic, rms = spectra.pixels("tic"), spectra.pixels("rms")
    shape = spectra.image_shape
    tissue, rule = tissue_mask(tic, rows, cols, shape, settings.mask)
    on = tissue[rows, cols]
    if on.sum() == 0:
        raise InputError(spectra.path, "the tissue mask is empty: no pixel has signal")
    n, n_pixels = len(peak_mz), spectra.n_pixels
    per_block = max(1, min(n, BLOCK_BYTES // (4 * n_pixels)))
    factor = small_factor(shape)
    small_mask = block_reduce(tissue.astype(np.float64), factor) > 0.5 if factor > 1 else tissue
    caps = np.zeros(n, dtype=np.float32)
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as h5:
        # flat chunks: the classical comparison streams bands of a few rows of every image
        chunk = (min(n, 16), min(shape[0], CHUNK_ROWS), min(shape[1], 256))
        images = h5.create_dataset(
            "images", (n, *shape), np.float32, chunks=chunk, compression="lzf"
        )
        small = h5.create_dataset("images_small", (n, *small_mask.shape), np.float32)
        # the cache holds one row of chunks, so that extract()'s pixel-chunk writes stay cheap
        with scratch_array(tmp, n, n_pixels, per_block, 2**16, 512 * 2**20) as raw:
            extract(spectra, peak_mz, window_ppm, max_values=max_values, out=raw)
            for i in range(0, n, per_block):
                block = np.asarray(raw[i : i + per_block], dtype=np.float32)
                normalise(block, settings.normalisation, tic, rms)
                values = block[:, on]
                caps[i : i + per_block] = clip_hotspots(values, settings.hotspot_quantile)
                stack = to_stack(values, rows[on], cols[on], shape)
                images[i : i + per_block] = stack
                small[i : i + per_block] = _shrink(stack, factor)
        h5.create_dataset("mz", data=peak_mz)
        h5.create_dataset("mask", data=tissue)
        h5.create_dataset("mask_small", data=small_mask)
        h5.create_dataset("clip_value", data=caps)
        h5.attrs.update(attrs, mask_rule=rule, small_factor=factor)
        pick = np.unique(np.linspace(0, n - 1, min(n, settings.montage_max)).round().astype(int))
        preview = small[pick] if len(pick) else np.zeros((0, *small_mask.shape), np.float32)
    return {
        "mask": tissue,
        "rule": rule,
        "clip_value": caps,
        "tissue": int(on.sum()),
        "preview": (pick, preview),
    }


def _shrink(stack: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return stack
    return np.stack([block_reduce(img, factor) for img in stack]).astype(np.float32)


@contextlib.contextmanager
def scratch_array(
    beside: Path, n: int, p: int, chunk_rows: int, chunk_cols: int, cache_bytes: int
) -> Iterator:
    """An (n, p) float32 array to fill and read back: in memory when it fits in
    :data:`BLOCK_BYTES`, else a temporary HDF5 dataset beside ``beside`` (chunks of
    ``chunk_rows`` x ``chunk_cols``, a chunk cache of ``cache_bytes``; removed afterwards)."""
    if n * p * 4 <= BLOCK_BYTES:
        yield np.zeros((n, p), dtype=np.float32)
        return
    path = Path(beside).with_name(f"{Path(beside).name}.scratch-{os.getpid()}")
    try:
        with h5py.File(path, "w", rdcc_nbytes=cache_bytes, rdcc_nslots=100_003) as f:
            yield f.create_dataset(
                "scratch", (n, p), np.float32, chunks=(min(n, chunk_rows), min(p, chunk_cols))
            )
    finally:
        path.unlink(missing_ok=True)


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


class WindowLookup:
    """Find the m/z window of many values at once: a table lookup, binary search at edges.

    The m/z range of the windows is cut into equal cells. A cell lying wholly inside one
    window maps to that window, a cell outside all windows to -1, and a cell that holds a
    window edge (or lies in two overlapping windows) to -2: only values in such cells, a
    small share, go through an exact binary search on the window edges. This replaces one
    binary search per value (the bottleneck) with one multiply and one gather.

    Parameters
    ----------
    lo, hi
        Inclusive window bounds, one per peak.
    max_cells
        Upper bound on the table size (int32 entries).
    cells_per_window
        Target number of cells across the narrowest window.
    """

    def __init__(
        self, lo: np.ndarray, hi: np.ndarray, max_cells: int = 1 << 23, cells_per_window: int = 16
    ) -> None:
        self.lo, self.hi = lo, hi
        span = float(hi.max() - lo.min())
        width = float((hi - lo).min())
        self.cell = max(span / (max_cells - 8), width / cells_per_window, 1e-12)
        # two spare cells below and above, so clipped lookups land in "outside" cells
        self.origin = float(lo.min()) - 2 * self.cell
        n_cells = int(np.ceil((float(hi.max()) - self.origin) / self.cell)) + 3
        table = np.full(n_cells, -1, dtype=np.int32)
        first = np.floor((lo - self.origin) / self.cell).astype(np.int64)
        last = np.floor((hi - self.origin) / self.cell).astype(np.int64)
        for j, (a, b) in enumerate(zip(first.tolist(), last.tolist(), strict=True)):
            seg = table[a + 2 : b - 1]  # cells strictly inside, with one cell of margin
            seg[seg != -1] = -2  # another window claims it too
            seg[seg == -1] = j
        for a, b in zip(first.tolist(), last.tolist(), strict=True):
            # the cells around each edge, one either side against rounding of the cell index
            table[max(a - 1, 0) : a + 2] = -2
            table[max(b - 1, 0) : b + 2] = -2
        self.table = table
        self.layers = []
        for ids in disjoint_layers(lo, hi):
            edges = np.empty(2 * len(ids))
            edges[0::2] = lo[ids]
            edges[1::2] = np.nextafter(hi[ids], np.inf)  # a value exactly on hi is inside
            self.layers.append((ids, edges))

    def lookup(self, mz: np.ndarray) -> np.ndarray:
        """Window id of each value: >= 0, -1 outside all windows, -2 needs :meth:`exact`."""
        pos = mz - self.origin
        pos *= 1.0 / self.cell
        return np.take(self.table, pos.astype(np.int64), mode="clip")

    def exact(self, mz: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per layer of disjoint windows: (indices into ``mz`` inside a window, window ids)."""
        hits = []
        for ids, edges in self.layers:
            k = np.searchsorted(edges, mz, side="right")
            inside = np.flatnonzero(k & 1)
            hits.append((inside, ids[k[inside] >> 1]))
        return hits


def extract_chunk_processed(
    mz: np.ndarray,
    intensity: np.ndarray,
    offsets: np.ndarray,
    windows: WindowLookup,
    n_peaks: int,
) -> np.ndarray:
    """Sum the intensities of each pixel of one chunk inside each window.

    Returns (n_peaks, n_pixels_in_chunk) float64.
    """
    n_pix = len(offsets) - 1
    if len(mz) == 0:
        return np.zeros((n_peaks, n_pix))
    pixel = np.repeat(np.arange(n_pix, dtype=np.int64), np.diff(offsets))
    win = windows.lookup(mz)
    sel = np.flatnonzero(win >= 0)
    slots = [win[sel].astype(np.int64) * n_pix + pixel[sel]]
    weights = [intensity[sel]]
    unsure = np.flatnonzero(win == -2)
    if len(unsure):
        for inside, ids in windows.exact(mz[unsure]):
            slots.append(ids * n_pix + pixel[unsure[inside]])
            weights.append(intensity[unsure[inside]])
    sums = np.bincount(
        np.concatenate(slots),
        weights=np.concatenate(weights).astype(np.float64),
        minlength=n_peaks * n_pix,
    )
    return sums.reshape(n_peaks, n_pix)


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
    out=None,
) -> np.ndarray:
    """Raw ion intensities, (n_peaks, n_pixels) float32, pixel order as in the file.

    ``out``: an array (or HDF5 dataset) of that shape to fill instead of a new array.
    """
    lo, hi = window_edges(peak_mz, tolerance_ppm)
    n_peaks = len(lo)
    if out is None:
        out = np.zeros((n_peaks, spectra.n_pixels), dtype=np.float32)
    windows = WindowLookup(lo, hi) if not spectra.continuous else None
    # Bound the (peaks x pixels) block that bincount fills, not just the spectra read.
    max_pixels = max(1, max_values // max(n_peaks, 1))

    def work(ch: Chunk) -> None:
        if spectra.continuous:
            block = extract_chunk_continuous(ch.mz, ch.intensity, lo, hi)
        else:
            block = extract_chunk_processed(ch.mz, ch.intensity, ch.offsets, windows, n_peaks)
        out[:, ch.start : ch.stop] = block

    overlapped(spectra.iter_chunks(max_values=max_values, max_pixels=max_pixels), work)
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


def block_reduce(img: np.ndarray, factor: int) -> np.ndarray:
    """Downscale a 2-D image by averaging ``factor`` x ``factor`` blocks (edges padded)."""
    if factor <= 1:
        return img
    h, w = img.shape
    ph, pw = -h % factor, -w % factor
    padded = np.pad(img, ((0, ph), (0, pw)))
    return padded.reshape((h + ph) // factor, factor, (w + pw) // factor, factor).mean(axis=(1, 3))


def montage(
    stack: np.ndarray,
    mz: np.ndarray,
    path,
    *,
    max_images: int = 100,
    title: str = "",
    tile_px: int = 128,
    total: int | None = None,
) -> None:
    """Save a PNG grid of ion images, each scaled to its own 0..max (viridis), labelled by m/z.

    ``total``: how many ion images there are, when ``stack`` is already a selection.

    Drawn with Pillow on one array of tiles: a matplotlib figure with a subplot per image
    takes seconds for a hundred images, this a fraction of one.
    """
    from matplotlib import colormaps
    from PIL import Image, ImageDraw, ImageFont

    n = len(stack)
    pick = np.unique(np.linspace(0, n - 1, min(n, max_images)).round().astype(int)) if n else []
    h, w = stack.shape[1:]
    factor = int(np.ceil(max(h, w) / tile_px))
    th, tw = -(-h // factor), -(-w // factor)
    ncol = max(1, int(np.ceil(np.sqrt(len(pick) * th / tw))))
    nrow = max(1, int(np.ceil(len(pick) / ncol)))
    gap, label, head = 4, 14, 24  # pixels between tiles, above each tile, above the grid
    cell_h, cell_w = th + gap + label, tw + gap
    mosaic = np.full((head + nrow * cell_h, ncol * cell_w), np.nan)
    for k, i in enumerate(pick):
        r, c = divmod(k, ncol)
        img = block_reduce(stack[i].astype(float), factor)
        top = img.max()
        y0, x0 = head + r * cell_h + label, c * cell_w
        mosaic[y0 : y0 + th, x0 : x0 + tw] = img / top if top > 0 else img
    lut = (colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    rgb = lut[np.clip(np.nan_to_num(mosaic) * 255, 0, 255).astype(np.uint8)]
    rgb[np.isnan(mosaic)] = 255
    im = Image.fromarray(rgb)
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=11)
    for k, i in enumerate(pick):
        r, c = divmod(k, ncol)
        draw.text(
            (c * cell_w + tw / 2, head + r * cell_h + label - 1),
            f"{mz[i]:.4f}",
            fill=(0, 0, 0),
            font=font,
            anchor="mb",
        )
    n = n if total is None else total
    shown = f"{len(pick)} of {n} ion images" if len(pick) < n else f"{n} ion images"
    draw.text(
        (4, 4),
        f"{title}: {shown}, m/z above each; colour 0 to each image's max (viridis)",
        fill=(0, 0, 0),
        font=font,
    )
    im.save(path, format="PNG", compress_level=3)
