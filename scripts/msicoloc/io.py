"""imzML reading and the workflow's HDF5 spectra file.

pyimzml parses the XML (the slow, irregular part); the binary ``.ibd`` is then read in
chunks of whole pixels with one ``read`` per chunk, so memory is bounded by the chunk size,
not by the number of pixels. Every spectrum is checked on the way (finite, sorted) and the
file pair as a whole before any data is read (UUID, size, checksum, coordinates).

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

import hashlib
import itertools
import logging
import math
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from msicoloc import InputError

log = logging.getLogger(__name__)

ACC_CONTINUOUS = "IMS:1000030"
ACC_PROCESSED = "IMS:1000031"
ACC_UUID = "IMS:1000080"
ACC_MD5 = "IMS:1000090"
ACC_SHA1 = "IMS:1000091"
ACC_MAX_X = "IMS:1000042"
ACC_MAX_Y = "IMS:1000043"
ACC_PIXEL_X = "IMS:1000046"
ACC_PIXEL_Y = "IMS:1000047"


@dataclass
class ImzMLIndex:
    """Where every spectrum lives in the ``.ibd``, plus the file's metadata."""

    imzml: Path
    ibd: Path
    coords: np.ndarray  # (n, 3) int64, 1-based x, y, z
    mz_offsets: np.ndarray
    mz_lengths: np.ndarray
    int_offsets: np.ndarray
    int_lengths: np.ndarray
    mz_dtype: np.dtype
    int_dtype: np.dtype
    continuous: bool
    uuid: str | None = None
    checksum: tuple[str, str] | None = None  # (algorithm, hex digest)
    max_xy: tuple[int | None, int | None] = (None, None)
    pixel_size_um: tuple[float | None, float | None] = (None, None)
    polarity: str | None = None
    spectrum_type: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def n_pixels(self) -> int:
        return len(self.coords)


def find_ibd(imzml: Path) -> Path:
    """The ``.ibd`` beside ``imzml`` (same stem, any case of the suffix)."""
    for candidate in (imzml.with_suffix(".ibd"), imzml.with_suffix(".IBD")):
        if candidate.is_file():
            return candidate
    for candidate in imzml.parent.glob(imzml.stem + ".*"):
        if candidate.suffix.lower() == ".ibd":
            return candidate
    raise InputError(imzml.with_suffix(".ibd"), "the .ibd binary file beside the imzML is missing")


def read_index(imzml: str | Path) -> ImzMLIndex:
    """Parse the imzML XML and check it against its ``.ibd`` before reading any data.

    The checksum is verified while the data are read (:func:`iter_imzml_chunks`).
    """
    from pyimzml.ImzMLParser import ImzMLParser

    imzml = Path(imzml)
    if not imzml.is_file():
        raise InputError(imzml, "file not found")
    ibd = find_ibd(imzml)
    try:
        parser = ImzMLParser(str(imzml), ibd_file=None)
    except Exception as err:  # lxml/ElementTree/pyimzml raise many types for broken XML
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(imzml, f"malformed imzML XML ({msg})") from None
    if parser.mzPrecision is None or parser.intensityPrecision is None:
        raise InputError(imzml, "no m/z or intensity array description (referenceableParamGroup)")
    if not parser.coordinates:
        raise InputError(imzml, "the file contains no spectra")

    fd = parser.metadata.file_description.param_by_accession
    idx = ImzMLIndex(
        imzml=imzml,
        ibd=ibd,
        coords=np.asarray(parser.coordinates, dtype=np.int64),
        mz_offsets=np.asarray(parser.mzOffsets, dtype=np.int64),
        mz_lengths=np.asarray(parser.mzLengths, dtype=np.int64),
        int_offsets=np.asarray(parser.intensityOffsets, dtype=np.int64),
        int_lengths=np.asarray(parser.intensityLengths, dtype=np.int64),
        mz_dtype=np.dtype(parser.mzPrecision).newbyteorder("<"),
        int_dtype=np.dtype(parser.intensityPrecision).newbyteorder("<"),
        continuous=ACC_CONTINUOUS in fd,
        uuid=_norm_uuid(fd.get(ACC_UUID)),
        polarity=parser.polarity,
        spectrum_type=parser.spectrum_mode,
    )
    if fd.get(ACC_SHA1):
        idx.checksum = ("sha1", str(fd[ACC_SHA1]).strip().lower())
    elif fd.get(ACC_MD5):
        idx.checksum = ("md5", str(fd[ACC_MD5]).strip().lower())
    if ACC_CONTINUOUS not in fd and ACC_PROCESSED not in fd:
        # The mode is mandatory in imzML 1.1; infer it rather than refuse an old file.
        idx.continuous = bool(np.all(idx.mz_offsets == idx.mz_offsets[0]))
    idx.max_xy, idx.pixel_size_um = _scan_settings(parser)
    _check_index(idx)
    return idx


def _norm_uuid(value: object) -> str | None:
    if value is None or str(value).strip() == "":
        return None
    text = re.sub(r"[{}\-\s]", "", str(value)).lower()
    try:
        return str(uuid.UUID(hex=text))
    except ValueError:
        return text


def _scan_settings(parser) -> tuple[tuple, tuple]:
    d = parser.imzmldict
    max_xy = (d.get("max count of pixels x"), d.get("max count of pixels y"))
    size = (d.get("pixel size x"), d.get("pixel size y"))
    if size[1] is None and size[0] is not None:
        size = (size[0], size[0])  # imzML writers often give only x for square pixels
    return (
        tuple(int(v) if v is not None else None for v in max_xy),
        tuple(float(v) if v is not None else None for v in size),
    )


def _check_index(idx: ImzMLIndex) -> None:
    ibd_size = idx.ibd.stat().st_size
    if ibd_size < 16:
        raise InputError(idx.ibd, f"truncated: {ibd_size} bytes, not even the 16-byte UUID header")
    with open(idx.ibd, "rb") as f:
        head = f.read(16)
    if idx.uuid is not None and str(uuid.UUID(bytes=head)) != idx.uuid:
        raise InputError(
            idx.ibd,
            f"UUID {uuid.UUID(bytes=head)} does not match the imzML's {idx.uuid}: "
            "the .ibd belongs to another imzML",
        )
    if np.any(idx.mz_lengths != idx.int_lengths):
        i = int(np.flatnonzero(idx.mz_lengths != idx.int_lengths)[0])
        raise InputError(
            idx.imzml,
            f"spectrum {i}: m/z array has {idx.mz_lengths[i]} values, "
            f"intensity array {idx.int_lengths[i]}",
        )
    if np.any(idx.mz_offsets < 16) or np.any(idx.int_offsets < 16):
        raise InputError(idx.imzml, "an array offset points into the .ibd's UUID header")
    end = max(
        int((idx.mz_offsets + idx.mz_lengths * idx.mz_dtype.itemsize).max()),
        int((idx.int_offsets + idx.int_lengths * idx.int_dtype.itemsize).max()),
    )
    if end > ibd_size:
        raise InputError(
            idx.ibd, f"truncated: the imzML needs {end} bytes, the file has {ibd_size}"
        )
    if idx.continuous and np.any(idx.mz_lengths != idx.mz_lengths[0]):
        raise InputError(idx.imzml, "continuous mode but spectra have different lengths")
    if np.all(idx.int_lengths == 0):
        raise InputError(idx.imzml, "every spectrum is empty: there is no data to analyse")
    _check_coords(idx)


def _check_coords(idx: ImzMLIndex) -> None:
    xy = idx.coords
    if np.any(xy < 1):
        i = int(np.flatnonzero((xy < 1).any(axis=1))[0])
        raise InputError(
            idx.imzml,
            f"spectrum {i}: coordinate {tuple(xy[i].tolist())} below 1 (imzML is 1-based)",
        )
    for axis, limit in zip("xy", idx.max_xy, strict=True):
        col = xy[:, "xy".index(axis)]
        if limit is not None and np.any(col > limit):
            i = int(np.argmax(col > limit))
            raise InputError(
                idx.imzml,
                f"spectrum {i}: {axis} = {col[i]} beyond 'max count of pixels {axis}' = {limit}",
            )
    _, first, counts = np.unique(xy, axis=0, return_index=True, return_counts=True)
    if np.any(counts > 1):
        dup = xy[first[np.argmax(counts > 1)]]
        raise InputError(
            idx.imzml,
            f"{int((counts > 1).sum())} duplicate pixel coordinates, e.g. {tuple(dup.tolist())}",
        )


class StreamingChecksum:
    """The .ibd's checksum, computed from the bytes the chunk reader reads anyway.

    Usual files store their arrays in order, so the chunks' byte spans follow each other and
    the whole file is hashed without a second read; any gap is read and hashed in passing.
    Spans that go back (an odd layout) make it fall back to hashing the file once more.
    """

    def __init__(self, idx: ImzMLIndex) -> None:
        self.idx = idx
        self.algo = idx.checksum[0] if idx.checksum else None
        self.hash = hashlib.new(self.algo) if self.algo else None
        self.pos = 0  # bytes hashed so far
        self.in_order = True

    def update(self, f, lo: int, buf: bytes) -> None:
        if self.hash is None or not self.in_order:
            return
        if lo < self.pos:
            self.in_order = False
            return
        if lo > self.pos:
            f.seek(self.pos)
            self.hash.update(f.read(lo - self.pos))
        self.hash.update(buf)
        self.pos = lo + len(buf)

    def verify(self) -> None:
        """Raise InputError if the file's checksum differs from the imzML's."""
        if self.hash is None:
            return
        if self.in_order:
            with open(self.idx.ibd, "rb") as f:
                f.seek(self.pos)
                while block := f.read(1 << 24):
                    self.hash.update(block)
            actual = self.hash.hexdigest()
        else:
            with open(self.idx.ibd, "rb") as f:
                actual = hashlib.file_digest(f, self.algo).hexdigest()
        expected = self.idx.checksum[1]
        if actual != expected:
            name = {"sha1": "SHA-1", "md5": "MD5"}[self.algo]
            raise InputError(
                self.idx.ibd, f"{name} checksum {actual} does not match the imzML's {expected}"
            )


@dataclass
class Chunk:
    """Spectra of pixels ``start:stop`` (processed: concatenated; continuous: a matrix)."""

    start: int
    stop: int
    mz: np.ndarray
    intensity: np.ndarray
    offsets: np.ndarray  # (stop - start + 1), relative to this chunk's arrays


def chunk_bounds(lengths: np.ndarray, max_values: int, max_pixels: int | None = None) -> list[int]:
    """Pixel indices cutting ``lengths`` into runs of at most ``max_values`` values each.

    A single pixel longer than the budget gets a chunk of its own.
    """
    n = len(lengths)
    cum = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    bounds = [0]
    while bounds[-1] < n:
        start = bounds[-1]
        stop = int(np.searchsorted(cum, cum[start] + max_values, side="right")) - 1
        stop = max(stop, start + 1)
        if max_pixels is not None:
            stop = min(stop, start + max_pixels)
        bounds.append(min(stop, n))
    return bounds


def iter_imzml_chunks(
    idx: ImzMLIndex, *, max_values: int = 4_000_000, checksum: StreamingChecksum | None = None
) -> Iterator[Chunk]:
    """Read, check and yield the spectra chunk by chunk (bounded memory).

    Each chunk's m/z and intensity arrays are cut from one read of the byte span they cover;
    ``checksum``, if given, is fed those bytes.
    """
    shared_mz = (
        _read_array(idx, idx.mz_offsets[0], idx.mz_lengths[0], idx.mz_dtype)
        if idx.continuous
        else None
    )
    if shared_mz is not None:
        _check_values(idx, shared_mz, None, np.array([0, len(shared_mz)]), 0)
    with open(idx.ibd, "rb") as f:
        bounds = chunk_bounds(idx.int_lengths, max_values)
        for start, stop in itertools.pairwise(bounds):
            arrays = [(idx.int_offsets[start:stop], idx.int_lengths[start:stop], idx.int_dtype)]
            if shared_mz is None:
                arrays.insert(
                    0, (idx.mz_offsets[start:stop], idx.mz_lengths[start:stop], idx.mz_dtype)
                )
            parts = _gather(f, arrays, checksum)
            mz = parts[0] if shared_mz is None else shared_mz
            inten = parts[-1]
            offsets = np.concatenate([[0], np.cumsum(idx.int_lengths[start:stop])])
            _check_values(idx, None if shared_mz is not None else mz, inten, offsets, start)
            if shared_mz is not None:
                inten = inten.reshape(stop - start, len(shared_mz))
            yield Chunk(start, stop, mz, inten, offsets)


def _read_array(idx: ImzMLIndex, offset: int, length: int, dtype: np.dtype) -> np.ndarray:
    with open(idx.ibd, "rb") as f:
        f.seek(int(offset))
        return np.frombuffer(f.read(int(length) * dtype.itemsize), dtype=dtype)


def _gather(f, arrays, checksum: StreamingChecksum | None) -> list[np.ndarray]:
    """Concatenate, per (offsets, lengths, dtype), the arrays stored at those offsets.

    Usual layouts interleave m/z and intensity arrays, so one read of the byte span they
    cover serves all of them. Odd layouts with far-apart arrays are read piece by piece.
    """
    spans = [(o, o + n * d.itemsize) for o, n, d in arrays if len(o)]
    wanted = sum(int((n * d.itemsize).sum()) for _, n, d in arrays)
    out = []
    if not spans or wanted == 0:
        return [np.empty(0, dtype=d.newbyteorder("=")) for _, _, d in arrays]
    lo = min(int(a.min()) for a, _ in spans)
    hi = max(int(b.max()) for _, b in spans)
    if hi - lo <= 2 * wanted + (1 << 20):
        f.seek(lo)
        buf = f.read(hi - lo)
        if checksum is not None:
            checksum.update(f, lo, buf)
        for offsets, lengths, dtype in arrays:
            parts = [
                np.frombuffer(buf, dtype=dtype, count=n, offset=o)
                for o, n in zip((offsets - lo).tolist(), lengths.tolist(), strict=True)
                if n
            ]
            out.append(_join(parts, dtype))
        return out
    if checksum is not None:
        checksum.in_order = False  # not read as a stream: hash the file separately
    for offsets, lengths, dtype in arrays:
        parts = []
        for o, n in zip(offsets.tolist(), lengths.tolist(), strict=True):
            f.seek(o)
            parts.append(np.frombuffer(f.read(n * dtype.itemsize), dtype=dtype))
        out.append(_join(parts, dtype))
    return out


def _join(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    native = dtype.newbyteorder("=")
    if not parts:
        return np.empty(0, dtype=native)
    return np.concatenate(parts).astype(native, copy=False)


def _check_values(
    idx: ImzMLIndex,
    mz: np.ndarray | None,
    inten: np.ndarray | None,
    offsets: np.ndarray,
    start: int,
) -> None:
    """Refuse non-finite values and m/z arrays that are not ascending."""
    for name, arr in (("m/z", mz), ("intensity", inten)):
        if arr is not None and not np.isfinite(arr).all():
            i = _pixel_of(int(np.flatnonzero(~np.isfinite(arr))[0]), offsets) + start
            raise InputError(
                idx.ibd, f"spectrum {i} at {_xy(idx, i)}: {name} array has NaN or infinite values"
            )
    if mz is not None and len(mz) > 1:
        bad = np.less(mz[1:], mz[:-1])
        # a drop across a pixel boundary is a new spectrum starting, not disorder
        inner = offsets[1:-1]
        bad[inner[(inner > 0) & (inner < len(mz))] - 1] = False
        if bad.any():
            i = _pixel_of(int(np.flatnonzero(bad)[0]), offsets) + start
            raise InputError(
                idx.ibd, f"spectrum {i} at {_xy(idx, i)}: m/z values are not in ascending order"
            )


def _pixel_of(value_index: int, offsets: np.ndarray) -> int:
    return int(np.searchsorted(offsets, value_index, side="right")) - 1


def _xy(idx: ImzMLIndex, i: int) -> str:
    return f"x={idx.coords[i, 0]}, y={idx.coords[i, 1]}"


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
    *,
    mean_bin_ppm: float = 1.0,
    verify_checksum: bool = True,
    max_values: int = 4_000_000,
) -> dict:
    """Convert ``imzml`` (+ ``.ibd``) to the HDF5 spectra file ``out``; return a summary."""
    idx = read_index(imzml)
    checksum = StreamingChecksum(idx) if verify_checksum else None
    n = idx.n_pixels
    rows, cols, shape = image_positions(idx.coords)
    tic = np.zeros(n)
    rms = np.zeros(n)
    n_peaks = idx.int_lengths.copy()
    grid = None if idx.continuous else LogGridAccumulator(mean_bin_ppm)
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
        s.attrs["bin_ppm"] = mean_bin_ppm if kind == "ppm_grid" else 0.0
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
