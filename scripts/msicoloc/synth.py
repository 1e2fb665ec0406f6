"""Synthetic mass spectrometry imaging data sets with known co-localization classes.

The generative model, from the tissue to the file:

1. :func:`make_patterns` draws an irregular tissue section on a rectangular canvas and one
   smooth spatial pattern per class (layers, rims, blobs, rings, gradients, ...), distinct
   enough for a good method to separate them.
2. :func:`simulate_ions` places monoisotopic ions on the m/z axis, a few classes' worth each,
   some with M+1/M+2 isotope partners that share their image.
3. :func:`simulate_spectra` turns the expected ion images into centroided spectra, pixel by
   pixel: Poisson counts (absent peaks are absent centroids), per-pixel calibration drift,
   per-peak m/z jitter, a little chemical background and random noise centroids.
4. :func:`write_imzml` streams the spectra into an imzML/ibd pair with pyimzml.

:func:`make_dataset` chains the four and writes the annotations (true m/z and class label of
every ion) beside the data; :func:`make_demo` is the embedded demo. Both are byte-for-byte
deterministic for a given seed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pyimzml.ImzMLWriter import ImzMLWriter, _Spectrum
from scipy import ndimage

from msicoloc import C13_SHIFT
from msicoloc.step import atomic_output

log = logging.getLogger(__name__)


#: Size of the embedded demo: ~230 ion images (160 monoisotopic ions plus isotopes) in 8
#: classes on a 48 x 56 canvas, small enough for the deep-learning demo on 2 CPU cores.
DEMO_SIZE = {"height": 48, "width": 56, "n_classes": 8, "n_ions": 160}

# Written into every synthetic imzML; 50 um is a common MALDI raster.
_PIXEL_SIZE_UM = 50.0
_POLARITY = "positive"

_PATTERN_KINDS = ("layer", "rim", "core", "blobs", "ring", "gradient", "band", "patches")
# Below the 0.5 the classes must stay under, leaving room for the admixture that
# simulate_spectra adds on top.
_MAX_PATTERN_CORR = 0.45
_PATTERN_TRIES = 60
_PLACEMENT_TRIES = 1000

# Chemical background peaks (matrix clusters) keep this far from every ion, so that they
# never pass for one.
_BACKGROUND_EXCLUSION_PPM = 100.0

# Write the imzML's spectrum list in slices of this many characters rather than as one more
# copy of a string that reaches hundreds of MB for 100,000 pixels.
_XML_CHUNK = 1 << 24

# pyimzml 1.5.5 references a cv it never declares and an instrument configuration id that
# does not exist; these are the declarations the header gets instead.
_IMS_CV = (
    '    <cv uri="http://www.maldi-msi.org/download/imzml/imagingMS.obo" '
    'fullName="Imaging MS Ontology" id="IMS" version="0.9.1"/>\n'
)
_SCAN_INSTRUMENT_REF = "instrumentConfiguration0"

_SUPPORTED_MZ = (np.float32, np.float64)
_SUPPORTED_INTENSITY = (np.float32, np.float64, np.int32, np.int64)


# --------------------------------------------------------------------------------------------
# Writing imzML


def write_imzml(
    path: str | os.PathLike[str],
    coords: np.ndarray,
    spectra: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    mode: Literal["processed", "continuous"] = "processed",
    mz_dtype: type = np.float64,
    intensity_dtype: type = np.float32,
    pixel_size_um: float | None = None,
    polarity: str | None = None,
    file_uuid: uuid.UUID | None = None,
) -> None:
    """Stream centroided spectra into an imzML/ibd pair.

    The spectra are consumed one at a time, so a run never has to fit in memory. Both files
    are written under temporary names and renamed only once complete: an existing ``path``
    always has its complete .ibd beside it.

    Parameters
    ----------
    path:
        The .imzML file to write; the .ibd goes beside it with the same stem.
    coords:
        Integer array (n, 2) of 1-based (x, y) pixel positions, one row per spectrum.
    spectra:
        Iterable (typically a generator) of ``(mz, intensity)`` 1-D arrays of equal length,
        in the order of ``coords``. Empty spectra are allowed in processed mode.
    mode:
        ``"processed"`` stores every m/z array; ``"continuous"`` stores the first one only
        and requires all of them to be identical.
    mz_dtype, intensity_dtype:
        Storage types: float32 or float64 for m/z, float32, float64, int32 or int64 for
        intensities.
    pixel_size_um:
        Written as pixel size x and y (IMS:1000046/47) when given.
    polarity:
        ``"positive"`` or ``"negative"``, written as MS:1000130/MS:1000129 when given.
    file_uuid:
        The UUID linking the imzML to its ibd; random when omitted. Pass one for files that
        must be reproducible byte for byte.
    """
    path = Path(path)
    if path.suffix.lower() != ".imzml":
        raise ValueError(f"{path}: an imzML file name must end in .imzML")
    if mode not in ("processed", "continuous"):
        raise ValueError(f"mode must be 'processed' or 'continuous', not {mode!r}")
    mz_type = _storage_type(mz_dtype, _SUPPORTED_MZ, "mz_dtype")
    int_type = _storage_type(intensity_dtype, _SUPPORTED_INTENSITY, "intensity_dtype")
    if polarity is not None and polarity not in ("positive", "negative"):
        raise ValueError(f"polarity must be 'positive', 'negative' or None, not {polarity!r}")
    if pixel_size_um is not None and not pixel_size_um > 0:
        raise ValueError(f"pixel_size_um must be positive, not {pixel_size_um}")
    coords = _check_coords(coords)

    start = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_stem = path.parent / f"{path.stem}.tmp-{os.getpid()}"
    tmp_imzml, tmp_ibd = Path(f"{tmp_stem}.imzML"), Path(f"{tmp_stem}.ibd")
    try:
        writer = _Writer(
            str(tmp_imzml),
            file_uuid=file_uuid,
            run_id=_xml_id(path.stem),
            pixel_size_um=pixel_size_um,
            mode=mode,
            mz_dtype=mz_type,
            intensity_dtype=int_type,
            spec_type="centroid",
            polarity=polarity,
        )
        with writer:
            _add_all(writer, coords, spectra, mode)
        # ibd first: an imzML under its final name always has its data beside it
        os.replace(tmp_ibd, path.with_suffix(".ibd"))
        os.replace(tmp_imzml, path)
    finally:
        for tmp in (tmp_imzml, tmp_ibd):
            tmp.unlink(missing_ok=True)
    log.debug("wrote %d spectra to %s in %.1f s", len(coords), path, time.perf_counter() - start)


def _add_all(writer: _Writer, coords: np.ndarray, spectra: Iterable, mode: str) -> None:
    first_mz = None
    n = 0
    for n, (mz, intensity) in enumerate(spectra, start=1):
        if n > len(coords):
            raise ValueError(f"more spectra than the {len(coords)} coordinates")
        x, y = int(coords[n - 1, 0]), int(coords[n - 1, 1])
        mz, intensity = np.asarray(mz), np.asarray(intensity)
        if mz.ndim != 1 or mz.shape != intensity.shape:
            raise ValueError(
                f"pixel ({x}, {y}): mz and intensity must be 1-D arrays of one length, "
                f"got shapes {mz.shape} and {intensity.shape}"
            )
        if mode == "continuous":
            if first_mz is None:
                if not mz.size:
                    raise ValueError(f"pixel ({x}, {y}): empty m/z axis in continuous mode")
                first_mz = mz
            elif mz is not first_mz and not np.array_equal(mz, first_mz):
                raise ValueError(f"pixel ({x}, {y}): m/z array differs in continuous mode")
        writer.addSpectrum(mz, intensity, (x, y))
    if n != len(coords):
        raise ValueError(f"{n} spectra for {len(coords)} coordinates")


class _Writer(ImzMLWriter):
    """pyimzml's writer with a chosen UUID, a portable run id, empty spectra and fixed header.

    pyimzml 1.5.5 draws a random UUID it offers no way to choose, uses the output path
    (directories included) as the run id, fails on empty spectra and writes neither pixel
    size nor the IMS cv declaration; everything else is its own.
    """

    def __init__(
        self,
        filename: str,
        *,
        file_uuid: uuid.UUID | None,
        run_id: str,
        pixel_size_um: float | None,
        **kwargs: object,
    ) -> None:
        super().__init__(filename, **kwargs)
        self.run_id = run_id
        self._pixel_size_um = pixel_size_um
        if file_uuid is not None:
            # The parent has already written its random UUID as the ibd's first 16 bytes and
            # fed it to the running SHA-1: start both again with ours.
            self.ibd.seek(0)
            self.ibd.truncate()
            self.sha1 = hashlib.sha1()
            self.uuid = file_uuid
            self._write_ibd(file_uuid.bytes)

    def addSpectrum(self, mzs, intensities, coords, userParams=()):  # pyimzml's name
        if len(mzs):
            return super().addSpectrum(mzs, intensities, coords, list(userParams))
        # The parent takes min/max of the arrays; imzML itself is fine with a pixel where
        # nothing was detected: zero-length arrays at the current end of the ibd.
        end = self.ibd.tell()
        self.spectra.append(
            _Spectrum(coords, 0, end, 0, 0, end, 0, 0.0, 0.0, 0.0, 0.0, 0.0, list(userParams))
        )
        return None

    def _write_xml(self) -> None:
        out = self.xml
        self.xml = _HeaderFixer(out, self._fix_header)
        try:
            super()._write_xml()
        finally:
            self.xml = out

    def _fix_header(self, head: str) -> str:
        head = _replace_once(head, '<cvList count="2">', '<cvList count="3">')
        head = _replace_once(head, "  </cvList>", _IMS_CV + "  </cvList>")
        # every scan points at this id, so the configuration gets it rather than "IC1"
        head = _replace_once(head, 'id="IC1"', f'id="{_SCAN_INSTRUMENT_REF}"')
        head = _replace_once(head, 'Ref="IC1"', f'Ref="{_SCAN_INSTRUMENT_REF}"')
        if self._pixel_size_um is not None:
            anchor = re.search(r'\n( *)<cvParam [^\n]*accession="IMS:1000043"[^\n]*\n', head)
            if anchor is None:
                raise RuntimeError("pyimzml's imzML template changed: no 'max count of pixels y'")
            indent, value = anchor.group(1), f"{self._pixel_size_um:g}"
            unit = 'unitCvRef="UO" unitAccession="UO:0000017" unitName="micrometer"'
            lines = "".join(
                f'{indent}<cvParam cvRef="IMS" accession="IMS:{acc}" name="{name}" '
                f'value="{value}" {unit}/>\n'
                for acc, name in (("1000046", "pixel size (x)"), ("1000047", "pixel size y"))
            )
            head = head[: anchor.end()] + lines + head[anchor.end() :]
        return head


class _HeaderFixer:
    """File stand-in that edits the header of the one XML string pyimzml writes at the end."""

    def __init__(self, out, fix) -> None:
        self._out = out
        self._fix = fix

    def write(self, text: str) -> None:
        split = text.index("<spectrumList")
        self._out.write(self._fix(text[:split]))
        for i in range(split, len(text), _XML_CHUNK):
            self._out.write(text[i : i + _XML_CHUNK])


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise RuntimeError(f"pyimzml's imzML template changed: {old!r} is not there once")
    return text.replace(old, new)


def _storage_type(dtype: object, supported: tuple[type, ...], name: str) -> type:
    # pyimzml names the type from the scalar class (np.float32), not from an np.dtype
    scalar = np.dtype(dtype).type
    if scalar not in supported:
        names = ", ".join(t.__name__ for t in supported)
        raise ValueError(f"{name} must be one of {names}, not {np.dtype(dtype)}")
    return scalar


def _check_coords(coords: np.ndarray) -> np.ndarray:
    coords = np.asarray(coords)
    if coords.ndim != 2 or coords.shape[1] != 2 or not np.issubdtype(coords.dtype, np.integer):
        raise ValueError(
            f"coords must be an integer array (n, 2), got {coords.dtype} {coords.shape}"
        )
    if len(coords) and coords.min() < 1:
        raise ValueError("coords are 1-based: every x and y must be at least 1")
    if len(np.unique(coords, axis=0)) != len(coords):
        raise ValueError("coords contain the same pixel twice")
    return coords


def _xml_id(stem: str) -> str:
    # mzML's run id is an xs:ID: letters, digits, '_', '-', '.', not starting with a digit
    ident = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)
    return ident if re.match(r"[A-Za-z_]", ident) else f"_{ident}"


# --------------------------------------------------------------------------------------------
# Spatial patterns


def make_patterns(
    height: int, width: int, n_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a tissue section and one smooth spatial pattern per class.

    The tissue is an irregular blob covering 62-72 % of the canvas. Each pattern is a
    morphological motif (depth layer, rim, core, blobs, ring, gradient, band or patches),
    smoothed, zero off tissue and scaled to a maximum of 1. Patterns are redrawn until their
    pairwise Pearson correlation on tissue is below 0.45, so classes are distinct, though
    several still share some tissue.

    Parameters
    ----------
    height, width:
        Canvas size in pixels, at least 16 each.
    n_classes:
        Number of patterns.
    rng:
        Source of randomness; the same state gives the same result.

    Returns
    -------
    patterns:
        float32 (n_classes, height, width) in [0, 1].
    mask:
        bool (height, width), True on tissue.
    """
    if height < 16 or width < 16:
        raise ValueError(f"canvas {height} x {width} is too small; 16 x 16 at least")
    if n_classes < 1:
        raise ValueError("n_classes must be at least 1")
    mask = _tissue_mask(height, width, rng)
    geo = _Geometry.of(mask)
    kinds = [str(k) for k in rng.permutation(_PATTERN_KINDS)]
    patterns: list[np.ndarray] = []
    for c in range(n_classes):
        best, best_corr = None, np.inf
        for attempt in range(_PATTERN_TRIES):
            # first the motif this class was dealt, then anything that fits
            kind = kinds[c % len(kinds)] if attempt < 10 else str(rng.choice(_PATTERN_KINDS))
            cand = _finish_pattern(_raw_pattern(kind, geo, rng), mask)
            on = cand[mask]
            if on.std() < 0.12:  # a nearly flat motif would not be a class of its own
                continue
            corr = max((_corr(on, p[mask]) for p in patterns), default=-1.0)
            if corr < best_corr:
                best, best_corr = cand, corr
            if corr < _MAX_PATTERN_CORR:
                break
        if best is None:
            raise RuntimeError("could not draw a pattern with contrast; canvas too small?")
        if best_corr >= _MAX_PATTERN_CORR:
            log.warning("class %d correlates %.2f with another; canvas too small?", c, best_corr)
        patterns.append(best)
    return np.stack(patterns).astype(np.float32), mask


@dataclass(frozen=True)
class _Geometry:
    yy: np.ndarray
    xx: np.ndarray
    mask: np.ndarray
    depth: np.ndarray  # distance to the nearest off-tissue pixel
    dmax: float
    size: float  # linear size of the tissue: sqrt of its area
    cy: float
    cx: float

    @classmethod
    def of(cls, mask: np.ndarray) -> _Geometry:
        yy, xx = np.mgrid[0 : mask.shape[0], 0 : mask.shape[1]].astype(np.float64)
        # pad so that tissue touching the canvas edge still gets a rim there
        depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        cy, cx = ndimage.center_of_mass(mask)
        size = float(np.sqrt(mask.sum()))
        return cls(yy, xx, mask, depth, float(depth.max()), size, float(cy), float(cx))

    def point(self, rng: np.random.Generator, min_depth: float = 0.0) -> tuple[float, float]:
        """A random tissue pixel at least ``min_depth`` (fraction of the deepest) inside."""
        ys, xs = np.nonzero(self.depth >= max(min_depth * self.dmax, 1.0))
        i = rng.integers(len(ys))
        return float(ys[i]), float(xs[i])

    def projection(self, rng: np.random.Generator) -> np.ndarray:
        """Signed distance along a random direction through the centroid, in tissue sizes."""
        theta = rng.uniform(0, 2 * np.pi)
        return (
            (self.xx - self.cx) * np.cos(theta) + (self.yy - self.cy) * np.sin(theta)
        ) / self.size


def _tissue_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    cy = (height - 1) / 2 + rng.uniform(-0.05, 0.05) * height
    cx = (width - 1) / 2 + rng.uniform(-0.05, 0.05) * width
    dy, dx = (yy - cy) / (height / 2), (xx - cx) / (width / 2)
    theta = np.arctan2(dy, dx)
    # an ellipse whose radius wobbles with a few low angular harmonics: lobes and notches
    harmonics = np.arange(2, 7)
    amp = rng.uniform(0.05, 0.15, harmonics.size) / np.sqrt(harmonics - 1)
    phase = rng.uniform(0, 2 * np.pi, harmonics.size)
    radius = 1 + (
        amp[:, None, None] * np.cos(harmonics[:, None, None] * theta + phase[:, None, None])
    ).sum(0)
    level = np.hypot(dy, dx) / radius
    # and a ragged, but smooth, edge
    level += 0.06 * ndimage.gaussian_filter(rng.standard_normal(level.shape), 2.0, mode="wrap")
    mask = level <= np.quantile(level, rng.uniform(0.62, 0.72))
    # one piece of tissue without holes, as a section on a slide
    labels, n = ndimage.label(mask)
    if n > 1:
        mask = labels == 1 + np.argmax(ndimage.sum(mask, labels, range(1, n + 1)))
    return ndimage.binary_fill_holes(mask)


def _raw_pattern(kind: str, g: _Geometry, rng: np.random.Generator) -> np.ndarray:
    if kind == "layer":  # a band at some depth below the tissue edge, as cortical layers
        d0 = rng.uniform(0.2, 0.65) * g.dmax
        return np.exp(-0.5 * ((g.depth - d0) / (rng.uniform(0.07, 0.14) * g.dmax)) ** 2)
    if kind == "rim":  # along the tissue edge
        return np.exp(-(g.depth - 1) / (rng.uniform(0.12, 0.22) * g.dmax))
    if kind == "core":  # the inner part of the section
        d0 = rng.uniform(0.4, 0.65) * g.dmax
        return _sigmoid((g.depth - d0) / (rng.uniform(0.05, 0.1) * g.dmax))
    if kind == "blobs":  # a few islands
        out = np.zeros_like(g.depth)
        for _ in range(rng.integers(2, 5)):
            y, x = g.point(rng)
            s = rng.uniform(0.05, 0.11) * g.size
            out = np.maximum(out, np.exp(-0.5 * ((g.yy - y) ** 2 + (g.xx - x) ** 2) / s**2))
        return out
    if kind == "ring":  # an annulus around an inner point
        y, x = g.point(rng, min_depth=0.4)
        r0, w = rng.uniform(0.12, 0.25) * g.size, rng.uniform(0.03, 0.06) * g.size
        return np.exp(-0.5 * ((np.hypot(g.yy - y, g.xx - x) - r0) / w) ** 2)
    if kind == "gradient":  # one side of the section
        proj = g.projection(rng)
        return _sigmoid((proj - rng.uniform(-0.15, 0.15)) / rng.uniform(0.05, 0.12))
    if kind == "band":  # a straight tract across the section
        proj = g.projection(rng)
        return np.exp(-0.5 * ((proj - rng.uniform(-0.3, 0.3)) / rng.uniform(0.04, 0.08)) ** 2)
    if kind == "patches":  # a mottled texture
        field = ndimage.gaussian_filter(rng.standard_normal(g.depth.shape), 0.07 * g.size)
        on = field[g.mask]
        field = (field - np.quantile(on, 0.65)) / (on.std() + 1e-12)
        return _sigmoid(field / 0.3)
    raise ValueError(f"unknown pattern kind {kind!r}")


def _finish_pattern(raw: np.ndarray, mask: np.ndarray) -> np.ndarray:
    pattern = ndimage.gaussian_filter(raw, 0.8) * mask
    return np.clip(pattern / max(pattern.max(), 1e-12), 0.0, 1.0)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * z))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


# --------------------------------------------------------------------------------------------
# Ions


@dataclass(frozen=True)
class Ion:
    """One peak of the simulated chemistry.

    Parameters
    ----------
    mz:
        True m/z of the peak.
    label:
        Class label, ``class_<pattern>``; isotopes carry their monoisotopic ion's.
    pattern:
        Index of the spatial pattern (class) the ion follows.
    abundance:
        Intensity scale relative to the other ions (the most abundant is near 1).
    isotope_of:
        m/z of the monoisotopic ion for M+1/M+2 isotopes, None for monoisotopic ions.
    """

    mz: float
    label: str
    pattern: int
    abundance: float
    isotope_of: float | None


def simulate_ions(
    n_classes: int,
    n_ions: int,
    rng: np.random.Generator,
    *,
    mz_range: tuple[float, float] = (150.0, 1000.0),
    isotope_fraction: float = 0.3,
    min_separation_ppm: float = 50.0,
    class_weights: np.ndarray | None = None,
) -> list[Ion]:
    """Draw monoisotopic ions and their isotopes, each class with at least 3 ions.

    Parameters
    ----------
    n_classes:
        Number of classes (spatial patterns) the ions are spread over.
    n_ions:
        Number of monoisotopic ions, at least ``3 * n_classes``.
    rng:
        Source of randomness; the same state gives the same result.
    mz_range:
        Interval all peaks, isotopes included, fall in.
    isotope_fraction:
        Share of ions with an M+1 isotope (+1.00336 Da, relative abundance about
        0.011 * mz / 14); half of those also get an M+2.
    min_separation_ppm:
        Least distance between any two peaks, isotopes included.
    class_weights:
        Relative class sizes (the ions beyond each class's 3 are drawn with these
        probabilities); None = uniform.

    Returns
    -------
    list of Ion
        Monoisotopic ions and isotopes, sorted by m/z. Abundances are log-uniform over 1.5
        decades.
    """
    lo, hi = map(float, mz_range)
    if n_classes < 1 or n_ions < 3 * n_classes:
        raise ValueError(f"{n_ions} ions cannot give each of {n_classes} classes 3 ions")
    if not 0 < lo < hi - 2 * C13_SHIFT:
        raise ValueError(f"bad mz_range {mz_range}")
    if not 0 <= isotope_fraction <= 1:
        raise ValueError(f"isotope_fraction must be in [0, 1], not {isotope_fraction}")
    n_extra = n_ions - 3 * n_classes
    if class_weights is None:
        extra = rng.integers(0, n_classes, n_extra)
    else:
        w = np.asarray(class_weights, dtype=float)
        if w.shape != (n_classes,) or np.any(w < 0) or not w.sum() > 0:
            raise ValueError(f"class_weights must be {n_classes} non-negative numbers")
        extra = rng.choice(n_classes, n_extra, p=w / w.sum())
    classes = rng.permutation(np.concatenate([np.repeat(np.arange(n_classes), 3), extra]))
    abundance = 10.0 ** rng.uniform(-1.5, 0.0, n_ions)
    n_isotopes = (rng.random(n_ions) < isotope_fraction) * (1 + (rng.random(n_ions) < 0.5))
    # 13C-driven: M+1 grows with the carbon count (~ mz / 14), M+2 roughly as its square / 2
    jitter = rng.uniform(0.8, 1.2, (n_ions, 2))
    width = len(str(n_classes - 1))
    taken = np.empty(0)
    ions: list[Ion] = []
    for i in range(n_ions):
        offsets = C13_SHIFT * np.arange(n_isotopes[i] + 1)
        for _ in range(_PLACEMENT_TRIES):
            peaks = rng.uniform(lo, hi - offsets[-1]) + offsets
            if _separated(peaks, taken, min_separation_ppm):
                break
        else:
            raise ValueError(
                f"cannot place {n_ions} ions {min_separation_ppm} ppm apart in {mz_range}"
            )
        taken = np.sort(np.concatenate([taken, peaks]))
        mono = float(peaks[0])
        label = f"class_{classes[i]:0{width}d}"
        r1 = 0.011 * mono / 14 * jitter[i, 0]
        ratios = (1.0, r1, r1**2 / 2 * jitter[i, 1])
        for k, mz in enumerate(peaks):
            ions.append(
                Ion(
                    mz=float(mz),
                    label=label,
                    pattern=int(classes[i]),
                    abundance=float(abundance[i] * ratios[k]),
                    isotope_of=mono if k else None,
                )
            )
    return sorted(ions, key=lambda ion: ion.mz)


def _separated(peaks: np.ndarray, taken: np.ndarray, ppm: float) -> bool:
    if not taken.size:
        return True
    j = np.searchsorted(taken, peaks)
    below = taken[np.clip(j - 1, 0, taken.size - 1)]
    above = taken[np.clip(j, 0, taken.size - 1)]
    nearest = np.minimum(np.abs(peaks - below), np.abs(above - peaks))
    return bool(np.all(nearest >= ppm * 1e-6 * peaks))


# --------------------------------------------------------------------------------------------
# Spectra


def simulate_spectra(
    ions: list[Ion],
    patterns: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    *,
    counts_scale: float = 200.0,
    admixture: float = 0.1,
    contrast_gamma: tuple[float, float] = (0.7, 1.5),
    jitter_ppm: float = 2.0,
    pixel_shift_ppm: float = 3.0,
    noise_peaks: tuple[int, int] = (20, 60),
    off_tissue_noise: bool = True,
    background_peaks: int = 4,
    admixture_max: float | None = None,
    curves: Literal["power", "mixed"] = "power",
    tissue_background: float = 0.0,
    hotspot_fraction: float = 0.0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield one centroided spectrum per canvas pixel, in row-major order.

    An ion's expected image is ``abundance * ((1 - admixture) * f(P)**gamma + admixture * Q)``
    (times hotspots, plus on-tissue background, when asked for) with P its class pattern, f the
    identity or a logistic threshold (``curves``), gamma drawn per ion from ``contrast_gamma``
    and Q another class's pattern (isotopes share their monoisotopic ion's gamma and Q). The
    observed intensity is Poisson(expected * counts_scale); a zero count leaves no centroid. The
    m/z of every centroid is moved by the pixel's calibration drift plus its own jitter. A few
    chemical background peaks (low, everywhere, on and off tissue, never near an ion) and random
    noise centroids complete the spectrum. Off-tissue pixels carry no ion signal.

    Parameters
    ----------
    ions:
        The peaks to simulate, at least one.
    patterns:
        float (n_classes, height, width) class patterns, as from :func:`make_patterns`.
    mask:
        bool (height, width), True on tissue.
    rng:
        Source of randomness, drawn from lazily; the same state gives the same spectra.
    counts_scale:
        Expected counts of an ion of abundance 1 where its pattern is 1.
    admixture:
        Share of another class's pattern in every ion's image.
    contrast_gamma:
        Range of the per-ion exponent applied to the pattern.
    jitter_ppm:
        Standard deviation of the m/z error of each centroid.
    pixel_shift_ppm:
        Standard deviation of the per-pixel calibration drift.
    noise_peaks:
        Inclusive range of the number of noise centroids per pixel.
    off_tissue_noise:
        Whether off-tissue pixels get noise centroids too.
    background_peaks:
        Number of chemical background peaks (matrix clusters).
    admixture_max:
        When given, every ion family draws its own admixture share from
        U(``admixture``, ``admixture_max``) instead of all sharing ``admixture``.
    curves:
        ``"power"``: the contrast curve is P**gamma; ``"mixed"``: half of the families get
        a logistic curve instead (a threshold at a random level of the pattern, as
        ionisation that sets in above some local concentration), then the power.
    tissue_background:
        Largest on-tissue background, relative to the ion's peak signal: each family draws a
        level from U(0, ``tissue_background``) times one smooth field shared by every ion
        (as matrix or ion-suppression effects that follow the tissue, not the molecule).
    hotspot_fraction:
        Share of tissue pixels that are hotspots in each ion's image (drawn per family):
        their expected intensity is multiplied by 3 to 30.

    Yields
    ------
    mz:
        float64, ascending.
    intensity:
        float32, positive.
    """
    n_classes, height, width = patterns.shape
    if mask.shape != (height, width):
        raise ValueError(f"mask {mask.shape} does not match patterns {patterns.shape}")
    if not ions:
        raise ValueError("no ions to simulate")
    if any(not 0 <= ion.pattern < n_classes for ion in ions):
        raise ValueError(f"an ion refers to a pattern outside 0..{n_classes - 1}")
    if not 0 <= noise_peaks[0] <= noise_peaks[1]:
        raise ValueError(f"bad noise_peaks {noise_peaks}")
    if not 0 <= admixture <= 1:
        raise ValueError(f"admixture must be in [0, 1], not {admixture}")
    if admixture_max is not None and not admixture <= admixture_max <= 1:
        raise ValueError(f"admixture_max must be in [admixture, 1], not {admixture_max}")
    if curves not in ("power", "mixed"):
        raise ValueError(f"curves must be 'power' or 'mixed', not {curves!r}")
    if tissue_background < 0 or not 0 <= hotspot_fraction < 1:
        raise ValueError("tissue_background must be >= 0 and hotspot_fraction in [0, 1)")

    # The draws happen in a nested generator, so that the arguments above are checked
    # when simulate_spectra is called, not at the first next().
    def pixels() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        ion_mz = np.array([ion.mz for ion in ions])
        mz_lo, mz_hi = float(ion_mz.min()), float(ion_mz.max())

        # Isotopes look exactly like their monoisotopic ion: one gamma and admixture per family.
        families = sorted({ion.mz if ion.isotope_of is None else ion.isotope_of for ion in ions})
        gamma = dict(zip(families, rng.uniform(*contrast_gamma, len(families)), strict=True))
        other = dict(zip(families, rng.integers(1, max(n_classes, 2), len(families)), strict=True))
        family = [ion.mz if ion.isotope_of is None else ion.isotope_of for ion in ions]
        own = np.array([ion.pattern for ion in ions])
        mixed = (own + np.array([other[f] for f in family])) % n_classes
        gammas = np.array([gamma[f] for f in family])[:, None]
        scale = np.array([ion.abundance for ion in ions])[:, None] * counts_scale
        # The nuisances below draw from rng only when switched on, so that data sets made
        # without them (the demo) stay byte for byte as they were.
        fam_index = np.searchsorted(families, family)
        n_fam = len(families)
        share = np.full((len(ions), 1), admixture)
        if admixture_max is not None:
            share = rng.uniform(admixture, admixture_max, n_fam)[fam_index, None]
        logistic = None
        if curves == "mixed":
            use = rng.random(n_fam) < 0.5
            centre, slope = rng.uniform(0.2, 0.7, n_fam), rng.uniform(0.05, 0.15, n_fam)
            logistic = (use[fam_index, None], centre[fam_index, None], slope[fam_index, None])
        field = None
        if tissue_background > 0:
            raw = ndimage.gaussian_filter(rng.standard_normal(mask.shape), max(mask.shape) / 8)
            raw = (raw - raw[mask].min()) / max(np.ptp(raw[mask]), 1e-12)
            field = (0.5 + 0.5 * raw) * mask
            bg_level = rng.uniform(0, tissue_background, n_fam)[fam_index, None]
        boost = None
        if hotspot_fraction > 0:
            boost = np.ones((n_fam, height, width))
            hot = (rng.random((n_fam, height, width)) < hotspot_fraction) & mask
            boost[hot] = rng.uniform(3.0, 30.0, int(hot.sum()))

        bg_mz = _background_mz(ion_mz, background_peaks, mz_lo, mz_hi, rng)
        bg_counts = rng.uniform(0.5, 3.0, bg_mz.size)[:, None]
        peak_mz = np.concatenate([ion_mz, bg_mz])

        for y in range(height):
            row = patterns[:, y, :].astype(np.float64)  # (n_classes, width)
            curve = row[own]
            if logistic is not None:
                use, centre, slope = logistic
                lo, hi = _sigmoid(-centre / slope), _sigmoid((1 - centre) / slope)
                thresholded = (_sigmoid((curve - centre) / slope) - lo) / (hi - lo)
                curve = np.where(use, thresholded, curve)
            level = (1 - share) * curve**gammas + share * row[mixed]
            if field is not None:
                level = level + bg_level * field[y]
            if boost is not None:
                level = level * boost[fam_index, y, :]
            expected = scale * level
            expected = np.vstack([expected, np.broadcast_to(bg_counts, (bg_mz.size, width))])
            counts = rng.poisson(expected.T)  # (width, n_peaks): pixel-major
            pix, peak = np.nonzero(counts)
            drift = rng.normal(0.0, pixel_shift_ppm, width)
            signal_mz = peak_mz[peak] * (
                1 + (drift[pix] + rng.normal(0, jitter_ppm, pix.size)) * 1e-6
            )
            signal_int = counts[pix, peak]

            n_noise = rng.integers(noise_peaks[0], noise_peaks[1] + 1, width)
            if not off_tissue_noise:
                n_noise[~mask[y]] = 0
            noise_pix = np.repeat(np.arange(width), n_noise)
            noise_mz = rng.uniform(mz_lo, mz_hi, noise_pix.size)
            noise_int = rng.lognormal(np.log(2.0), 0.6, noise_pix.size)

            pix = np.concatenate([pix, noise_pix])
            mz = np.concatenate([signal_mz, noise_mz])
            intensity = np.concatenate([signal_int, noise_int]).astype(np.float32)
            order = np.lexsort((mz, pix))
            mz, intensity = mz[order], intensity[order]
            ends = np.cumsum(np.bincount(pix, minlength=width))
            for x in range(width):
                start = ends[x - 1] if x else 0
                yield mz[start : ends[x]], intensity[start : ends[x]]

    return pixels()


def _background_mz(
    ion_mz: np.ndarray, n: int, lo: float, hi: float, rng: np.random.Generator
) -> np.ndarray:
    ion_sorted = np.sort(ion_mz)
    chosen = np.empty(0)
    for _ in range(n):
        for _ in range(_PLACEMENT_TRIES):
            mz = rng.uniform(lo, hi, 1)
            if _separated(mz, ion_sorted, _BACKGROUND_EXCLUSION_PPM):
                chosen = np.append(chosen, mz)
                break
    return chosen


# --------------------------------------------------------------------------------------------
# Data sets


def make_dataset(
    imzml_path: str | os.PathLike[str],
    annotations_path: str | os.PathLike[str],
    *,
    height: int = 48,
    width: int = 56,
    n_classes: int = 8,
    n_ions: int = 160,
    seed: int = 0,
    mode: Literal["processed", "continuous"] = "processed",
    bin_ppm: float = 10.0,
    **spectra_kw: object,
) -> list[Ion]:
    """Write a synthetic imzML/ibd pair and its ion annotations.

    Every canvas pixel is a spectrum, at 1-based (x, y) in row-major order, 50 um pixels,
    positive polarity. The result depends on ``seed`` alone (and the sizes): the files are
    byte-for-byte reproducible.

    Parameters
    ----------
    imzml_path:
        The .imzML to write; the .ibd goes beside it.
    annotations_path:
        TSV with columns ``mz`` (6 decimals) and ``label`` (class), one row per ion,
        isotopes included, sorted by m/z.
    height, width:
        Canvas size in pixels.
    n_classes:
        Number of spatial patterns (co-localization classes).
    n_ions:
        Number of monoisotopic ions; isotopes come on top.
    seed:
        Seed of every random draw, the file UUID included.
    mode:
        ``"processed"`` writes the centroids; ``"continuous"`` sums them into bins of
        ``bin_ppm`` on one m/z axis shared by all pixels, zeros kept (large: the axis has
        ~ ln(mz_max / mz_min) / bin_ppm * 1e6 points per pixel).
    bin_ppm:
        Bin width of the continuous m/z axis.
    spectra_kw:
        Passed on to :func:`simulate_spectra`.

    Returns
    -------
    list of Ion
        The simulated ions, sorted by m/z.
    """
    rng_patterns, rng_ions, rng_spectra, rng_uuid = _streams(seed)
    patterns, mask = make_patterns(height, width, n_classes, rng_patterns)
    ions = simulate_ions(n_classes, n_ions, rng_ions)
    spectra = simulate_spectra(ions, patterns, mask, rng_spectra, **spectra_kw)
    if mode == "continuous":
        spectra = _binned(spectra, _ppm_edges(ions, bin_ppm))
    yy, xx = np.mgrid[1 : height + 1, 1 : width + 1]
    write_imzml(
        imzml_path,
        np.column_stack([xx.ravel(), yy.ravel()]),
        spectra,
        mode=mode,
        pixel_size_um=_PIXEL_SIZE_UM,
        polarity=_POLARITY,
        file_uuid=uuid.UUID(bytes=rng_uuid.bytes(16), version=4),
    )
    with atomic_output(annotations_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("mz\tlabel\n")
        f.writelines(f"{ion.mz:.6f}\t{ion.label}\n" for ion in ions)
    log.info(
        "synthetic data set: %d x %d pixels, %d ion images (%d monoisotopic), %d classes -> %s",
        height,
        width,
        len(ions),
        n_ions,
        n_classes,
        imzml_path,
    )
    return ions


def make_demo(
    imzml_path: str | os.PathLike[str], annotations_path: str | os.PathLike[str], *, seed: int = 0
) -> None:
    """Write the embedded demo data set (:data:`DEMO_SIZE`), byte-for-byte reproducible.

    Parameters
    ----------
    imzml_path:
        The .imzML to write; the .ibd goes beside it.
    annotations_path:
        TSV of the true ``mz`` and class ``label`` of every ion.
    seed:
        Seed of every random draw.
    """
    make_dataset(imzml_path, annotations_path, seed=seed, **DEMO_SIZE)


def _streams(seed: int) -> list[np.random.Generator]:
    # Independent streams for patterns, ions, spectra and UUID: changing how many ions are
    # drawn leaves the patterns as they were, and the lazily drawn spectra cannot disturb the
    # rest.
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]


def _ppm_edges(ions: list[Ion], bin_ppm: float) -> np.ndarray:
    if not bin_ppm > 0:
        raise ValueError(f"bin_ppm must be positive, not {bin_ppm}")
    lo = min(ion.mz for ion in ions) * (1 - 200e-6)
    hi = max(ion.mz for ion in ions) * (1 + 200e-6)
    n_bins = int(np.ceil(np.log(hi / lo) / np.log1p(bin_ppm * 1e-6)))
    return lo * (1 + bin_ppm * 1e-6) ** np.arange(n_bins + 1)


def _binned(
    spectra: Iterable[tuple[np.ndarray, np.ndarray]], edges: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    centers = np.sqrt(edges[:-1] * edges[1:])  # geometric: the middle in ppm
    n_bins = centers.size
    for mz, intensity in spectra:
        # centroids beyond the axis (far drift tails) go to the outermost bins
        idx = np.clip(np.searchsorted(edges, mz, side="right") - 1, 0, n_bins - 1)
        yield centers, np.bincount(idx, weights=intensity, minlength=n_bins).astype(np.float32)
