"""imzML reading: the XML index, checks of the file pair, and chunked reads of the .ibd.

pyimzml parses the XML (the slow, irregular part); the binary ``.ibd`` is then read in
chunks of whole pixels with one ``read`` per chunk, so memory is bounded by the chunk size,
not by the number of pixels. Every spectrum is checked on the way (finite, sorted) and the
file pair as a whole before any data is read (UUID, size, checksum, coordinates).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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
