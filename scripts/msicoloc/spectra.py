"""The workflow's HDF5 spectra file: written by :func:`convert`, read by :class:`SpectraFile`.
Layout of ``spectra.h5`` (one group per topic, all arrays indexed by pixel in file order):

``spectra/mz``, ``spectra/intensity``
    processed mode: all spectra concatenated (CSR); ``spectra/offsets`` (n_pixels + 1) marks
    where each pixel starts. Continuous mode: ``spectra/mz`` is the shared axis and
    ``spectra/intensity`` is (n_pixels, n_mz).
``pixels/coords`` (n, 3) original 1-based x, y, z; ``pixels/row``, ``pixels/col`` 0-based image
    position (bounding box of the measured pixels); ``pixels/tic``, ``pixels/rms``,
    ``pixels/n_peaks``.
``mean_spectrum/intensity``, ``/pixel_count`` (and ``/mz`` on a native axis)
    mean intensity over all pixels and number of pixels with signal, on the native axis
    (continuous) or on a ppm-spaced grid (processed, attributes ``bin_ppm``, ``first_bin``;
    read it with :meth:`SpectraFile.mean_spectrum`).
Root attributes: source file, uuid, mode, image_shape, pixel size, polarity, n_pixels.
"""

from __future__ import annotations

import itertools
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np

from msicoloc.imzml import Chunk, chunk_bounds
from msicoloc.settings import ConvertSettings

log = logging.getLogger(__name__)


class LogGridAccumulator:
    """Sum intensities and count centroids on a grid with bins of constant width in ppm.

    The grid is anchored at m/z 1 so any two data sets share bin edges; the array grows to the
    m/z range actually seen.
    """

    def __init__(self, bin_ppm: float) -> None:
        self.bin_ppm = bin_ppm
        self._inv_step = 1.0 / math.log1p(bin_ppm * 1e-6)
        self._lo = None  # grid index of element 0
        self.sum = np.zeros(0)
        self.count = np.zeros(0, dtype=np.int64)

    def add(self, mz: np.ndarray, intensity: np.ndarray) -> None:
        self.add_bins(*self.bins(mz, intensity))

    def bins(self, mz: np.ndarray, intensity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid index of each value (and the intensities kept); no state is touched, so this,
        the costly part, may run in another thread than :meth:`add_bins`."""
        keep = mz > 1.0  # m/z <= 1 is not a molecular ion; also keeps log(mz) positive
        if not keep.all():
            mz, intensity = mz[keep], intensity[keep]
        scaled = np.log(mz)
        scaled *= self._inv_step
        return scaled.astype(np.int64), intensity  # truncation = floor, as log(mz) > 0

    def add_bins(self, k: np.ndarray, intensity: np.ndarray) -> None:
        """Accumulate values whose grid indices :meth:`bins` gave."""
        if len(k) == 0:
            return
        kmin, kmax = int(k.min()), int(k.max())
        self._grow(kmin, kmax)
        k -= self._lo
        n = len(self.sum)
        self.sum += np.bincount(k, weights=intensity, minlength=n)
        self.count += np.bincount(k, minlength=n)

    def _grow(self, kmin: int, kmax: int) -> None:
        if self._lo is None:
            self._lo = kmin
            self.sum = np.zeros(kmax - kmin + 1)
            self.count = np.zeros(kmax - kmin + 1, dtype=np.int64)
            return
        hi = self._lo + len(self.sum) - 1
        new_lo, new_hi = min(self._lo, kmin), max(hi, kmax)
        if (new_lo, new_hi) == (self._lo, hi):
            return
        pad = (self._lo - new_lo, new_hi - hi)
        self.sum = np.pad(self.sum, pad)
        self.count = np.pad(self.count, pad)
        self._lo = new_lo

    @property
    def first_bin(self) -> int:
        """Grid index of element 0 (bin k spans m/z exp(k * step) to exp((k + 1) * step))."""
        return self._lo or 0

    def centers(self) -> np.ndarray:
        """Geometric bin centres in m/z."""
        return grid_centers(self.first_bin, len(self.sum), self.bin_ppm)


def grid_centers(first_bin: int, n: int, bin_ppm: float) -> np.ndarray:
    """Centres of ``n`` bins of a ppm grid (anchored at m/z 1) starting at ``first_bin``."""
    return np.exp((np.arange(n) + first_bin + 0.5) * math.log1p(bin_ppm * 1e-6))


def convert(
    imzml: str | Path,
    out: str | Path,
    settings: ConvertSettings,
    *,
    max_values: int = 4_000_000,
) -> dict:
    """Convert ``imzml`` (+ ``.ibd``) to the HDF5 spectra file ``out``; return a summary.

    ``max_values`` (values read per chunk) bounds memory and does not change the result.
    """
    # imzML parsing (pyimzml) is only needed here, not to read spectra.h5
    from msicoloc.imzml import StreamingChecksum, iter_imzml_chunks, read_index

    idx = read_index(imzml)
    checksum = StreamingChecksum(idx) if settings.verify_checksum else None
    n = idx.n_pixels
    rows, cols, shape = image_positions(idx.coords)
    tic = np.zeros(n)
    rms = np.zeros(n)
    n_peaks = idx.int_lengths.copy()
    grid = None if idx.continuous else LogGridAccumulator(settings.mean_bin_ppm)
    with h5py.File(out, "w") as h5:
        g = h5.create_group("spectra")
        mz_type = idx.mz_dtype.newbyteorder("=")
        int_type = idx.int_dtype.newbyteorder("=")
        if idx.continuous:
            n_mz = int(idx.mz_lengths[0])
            d_int = g.create_dataset(
                "intensity", (n, n_mz), int_type, chunks=(max(1, min(n, 2**20 // n_mz)), n_mz)
            )
            d_mz = None
            mean_sum = np.zeros(n_mz)
            mean_count = np.zeros(n_mz, dtype=np.int64)
        else:
            total = int(idx.int_lengths.sum())
            chunk = (min(total, 1 << 20),) if total else None
            d_mz = g.create_dataset("mz", (total,), mz_type, chunks=chunk)
            d_int = g.create_dataset("intensity", (total,), int_type, chunks=chunk)
            g.create_dataset(
                "offsets", data=np.concatenate([[0], np.cumsum(idx.int_lengths)]).astype(np.int64)
            )
        starts = np.concatenate([[0], np.cumsum(idx.int_lengths)])

        def with_bins(chunks):
            # the grid indices are computed here, beside the reading, not in store()
            for ch in chunks:
                yield ch, (grid.bins(ch.mz, ch.intensity) if grid is not None else None)

        def store(item: tuple[Chunk, tuple | None]) -> None:
            ch, bins = item
            if idx.continuous:
                inten64 = ch.intensity.astype(np.float64, copy=False)
                if ch.start == 0:  # the shared axis, already read and checked by the reader
                    g.create_dataset("mz", data=ch.mz)
                d_int[ch.start : ch.stop] = ch.intensity
                tic[ch.start : ch.stop] = inten64.sum(axis=1)
                rms[ch.start : ch.stop] = np.sqrt((inten64**2).mean(axis=1))
                n_peaks[ch.start : ch.stop] = (ch.intensity > 0).sum(axis=1)
                mean_sum[:] += inten64.sum(axis=0)
                mean_count[:] += (ch.intensity > 0).sum(axis=0)
            else:
                pos = int(starts[ch.start])
                d_mz[pos : pos + len(ch.mz)] = ch.mz
                d_int[pos : pos + len(ch.mz)] = ch.intensity
                tic[ch.start : ch.stop] = _segment_sums(ch.intensity, ch.offsets)
                sq = _segment_sums(np.square(ch.intensity, dtype=np.float64), ch.offsets)
                lengths = np.diff(ch.offsets)
                rms[ch.start : ch.stop] = np.sqrt(sq / np.maximum(lengths, 1))
                grid.add_bins(*bins)

        chunks = iter_imzml_chunks(idx, max_values=max_values, checksum=checksum)
        overlapped(with_bins(chunks), store)
        if checksum is not None:
            checksum.verify()
        if idx.continuous:
            mean_mz = h5["spectra/mz"][:]
            mean_int, mean_cnt = mean_sum / n, mean_count
            kind = "native"
        else:
            mean_mz, mean_int, mean_cnt = grid.centers(), grid.sum / n, grid.count
            kind = "ppm_grid"
        p = h5.create_group("pixels")
        p.create_dataset("coords", data=idx.coords.astype(np.int32))
        p.create_dataset("row", data=rows)
        p.create_dataset("col", data=cols)
        p.create_dataset("tic", data=tic)
        p.create_dataset("rms", data=rms)
        p.create_dataset("n_peaks", data=n_peaks)
        s = h5.create_group("mean_spectrum")
        # a fine ppm grid is mostly empty bins: compression takes it from ~45 MB to ~1 MB
        packed = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
        if kind == "native":
            s.create_dataset("mz", data=mean_mz)
        else:  # the grid's m/z follow from its first bin; 8 bytes a bin that need not be stored
            s.attrs["first_bin"] = grid.first_bin
        s.create_dataset("intensity", data=mean_int, **packed)
        s.create_dataset("pixel_count", data=mean_cnt.astype(np.int32), **packed)
        s.attrs["kind"] = kind
        s.attrs["bin_ppm"] = settings.mean_bin_ppm if kind == "ppm_grid" else 0.0
        attrs = {
            "source_imzml": idx.imzml.name,
            "source_ibd": idx.ibd.name,
            "uuid": idx.uuid or "",
            "mode": "continuous" if idx.continuous else "processed",
            "spectrum_type": idx.spectrum_type or "",
            "polarity": idx.polarity or "",
            "n_pixels": n,
            "image_shape": np.asarray(shape, dtype=np.int64),
            "pixel_size_um": np.asarray(
                [v if v is not None else np.nan for v in idx.pixel_size_um], dtype=float
            ),
            "mz_dtype": str(idx.mz_dtype),
            "intensity_dtype": str(idx.int_dtype),
            "n_empty_spectra": int((idx.int_lengths == 0).sum()),
        }
        h5.attrs.update(attrs)
    return attrs


def overlapped(items, work) -> None:
    """Call ``work`` on each item in a second thread while the next item is being produced.

    Reading and checking the next chunk (file reads and numpy release the GIL) overlaps with
    storing and summarising the previous one; at most two chunks are in memory.
    """
    with ThreadPoolExecutor(1) as pool:
        pending = None
        for item in items:
            if pending is not None:
                pending.result()
            pending = pool.submit(work, item)
        if pending is not None:
            pending.result()


def _segment_sums(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum (in float64) of ``values[offsets[i]:offsets[i+1]]`` for every i; empty ones give 0."""
    out = np.zeros(len(offsets) - 1)
    full = np.flatnonzero(np.diff(offsets) > 0)
    if len(full):
        # reduceat needs non-empty segments: sum from each non-empty start to the next one
        out[full] = np.add.reduceat(values, offsets[full], dtype=np.float64)
    return out


def image_positions(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """0-based (row, col) of each pixel in the bounding box of the measured area."""
    x, y = coords[:, 0], coords[:, 1]
    cols = (x - x.min()).astype(np.int32)
    rows = (y - y.min()).astype(np.int32)
    return rows, cols, (int(rows.max()) + 1, int(cols.max()) + 1)


class SpectraFile:
    """Read access to a ``spectra.h5`` written by :func:`convert`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.h5 = h5py.File(self.path, "r")
        self.attrs = dict(self.h5.attrs)
        self.continuous = self.attrs["mode"] == "continuous"
        self.n_pixels = int(self.attrs["n_pixels"])
        self.image_shape = tuple(int(v) for v in self.attrs["image_shape"])

    def __enter__(self) -> SpectraFile:
        return self

    def __exit__(self, *exc) -> None:
        self.h5.close()

    def pixels(self, name: str) -> np.ndarray:
        return self.h5["pixels"][name][:]

    def mean_spectrum(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        s = self.h5["mean_spectrum"]
        kind = str(s.attrs["kind"])
        intensity = s["intensity"][:]
        if kind == "native":
            mz = s["mz"][:]
        else:
            mz = grid_centers(int(s.attrs["first_bin"]), len(intensity), float(s.attrs["bin_ppm"]))
        return mz, intensity, s["pixel_count"][:], kind

    def iter_chunks(self, *, max_values: int = 4_000_000, max_pixels: int | None = None):
        """Yield :class:`Chunk` objects covering all pixels in order."""
        g = self.h5["spectra"]
        if self.continuous:
            mz = g["mz"][:]
            lengths = np.full(self.n_pixels, len(mz))
            bounds = chunk_bounds(lengths, max_values, max_pixels)
            for a, b in itertools.pairwise(bounds):
                offsets = np.arange(b - a + 1) * len(mz)
                yield Chunk(a, b, mz, g["intensity"][a:b], offsets)
            return
        offsets = g["offsets"][:]
        bounds = chunk_bounds(np.diff(offsets), max_values, max_pixels)
        d_mz, d_int = g["mz"], g["intensity"]
        for a, b in itertools.pairwise(bounds):
            lo, hi = int(offsets[a]), int(offsets[b])
            yield Chunk(a, b, d_mz[lo:hi], d_int[lo:hi], offsets[a : b + 1] - lo)
