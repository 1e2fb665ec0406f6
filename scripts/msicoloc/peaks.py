"""Peak picking on a data set's mean spectrum.

The mean spectrum of centroided (processed) data is a histogram of centroids on a fine ppm
grid: a real ion shows up as a narrow mound a few ppm wide (calibration drift and jitter
between pixels), a noise centroid as an isolated blip. So the spectrum is first smoothed with
a Gaussian of ``smooth_ppm`` and its local maxima become candidates. A candidate is kept when
it stands ``snr`` robust noise units above the local noise (median and MAD of the local maxima
nearby), is present in at least ``min_pixel_share`` of the pixels, and is the highest within
``min_separation_ppm``. Its m/z is the intensity-weighted centroid of the unsmoothed
spectrum around the maximum.

In centroided data the noise is measured on the maxima that too few pixels share to be an
ion (or only one pixel has). Data without noise centroids (a vendor export thresholded
before centroiding) have no such maxima: every maximum is an ion, their spread is no noise,
and the pixel share alone decides (the peaks' SNR is then unknown, NaN).
"""

from __future__ import annotations

import bisect
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

from msicoloc import InputError
from msicoloc.settings import PeakSettings

PEAK_COLUMNS = ["mz", "intensity", "snr", "pixel_share"]
MIN_NOISE_MAXIMA = 5  # fewer maxima tell nothing about the noise

log = logging.getLogger(__name__)


def ppm_step(mz: np.ndarray) -> np.ndarray:
    """Local bin width in ppm of an ascending m/z axis (one value per point)."""
    step = np.gradient(mz) / mz * 1e6
    return np.maximum(step, np.finfo(float).tiny)


def smooth(mz: np.ndarray, intensity: np.ndarray, sigma_ppm: float) -> np.ndarray:
    """Gaussian smoothing with a width given in ppm (bins may vary in width)."""
    if sigma_ppm <= 0:
        return intensity.astype(float)
    sigma_bins = sigma_ppm / float(np.median(ppm_step(mz)))
    return gaussian_filter1d(intensity.astype(float), sigma_bins, mode="constant")


def data_window_ppm(mz: np.ndarray, kind: str, tolerance_ppm: float) -> float:
    """Half window (ppm) of a peak on this m/z axis: ``tolerance_ppm``, unless the axis is a
    native one sampled more coarsely than that.

    ppm settings assume high resolution. A low-resolution profile spectrum (TOF-class, e.g.
    0.3 Da steps at m/z 800, about 375 ppm) has peaks a few samples wide: a 10 ppm window
    then holds at most one sample, misses the apex when the centroid lies between samples,
    and the peak's noise cannot be told from its neighbours'. There the window becomes 1.5
    sampling steps (the apex and one sample each side), from the coarsest step of the axis.
    """
    if kind != "native" or len(mz) < 3:
        return float(tolerance_ppm)
    step = np.diff(mz) / mz[:-1] * 1e6
    if np.median(step) <= tolerance_ppm:
        return float(tolerance_ppm)
    return float(max(tolerance_ppm, 1.5 * np.quantile(step, 0.99)))


def local_maxima(values: np.ndarray) -> np.ndarray:
    """Indices of positive points higher than the left neighbour and not lower than the right
    (a flat top counts once, at its left end)."""
    mid = values[1:-1]
    return np.flatnonzero((mid > values[:-2]) & (mid >= values[2:]) & (mid > 0)) + 1


def local_noise(
    mz: np.ndarray, heights: np.ndarray, at: np.ndarray, window_mz: float
) -> tuple[np.ndarray, np.ndarray]:
    """Robust baseline (median) and noise (1.4826 MAD) of local-maximum ``heights`` near ``at``.

    ``mz``/``heights`` are all local maxima of the smoothed spectrum. Noise maxima far
    outnumber real peaks, so the median and MAD of the maxima in a window describe the noise
    peaks, whatever the binning (a centroid histogram is mostly empty bins, so statistics of
    the bins themselves would say the noise is zero). Windows of ``window_mz`` tile the range;
    a window with fewer than 5 maxima takes the estimate over all maxima.
    """
    edges = np.arange(mz[0], mz[-1] + window_mz, window_mz)
    which = np.clip(np.searchsorted(edges, mz, side="right") - 1, 0, len(edges) - 1)
    glob_med = float(np.median(heights))
    glob_mad = 1.4826 * float(np.median(np.abs(heights - glob_med)))
    base = np.full(len(edges), glob_med)
    noise = np.full(len(edges), glob_mad)
    order = np.argsort(which, kind="stable")
    cuts = np.searchsorted(which[order], np.arange(len(edges) + 1))
    for w in range(len(edges)):
        v = heights[order[cuts[w] : cuts[w + 1]]]
        if len(v) >= 5:
            base[w] = np.median(v)
            noise[w] = 1.4826 * np.median(np.abs(v - base[w]))
    positive = noise[noise > 0]
    noise = np.where(noise > 0, noise, positive.min() if len(positive) else 1.0)
    aw = np.clip(np.searchsorted(edges, at, side="right") - 1, 0, len(edges) - 1)
    return base[aw], noise[aw]


def pick_peaks(
    mz: np.ndarray,
    intensity: np.ndarray,
    pixel_count: np.ndarray,
    n_pixels: int,
    settings: PeakSettings,
    *,
    kind: str,
    tolerance_ppm: float,
) -> pd.DataFrame:
    """Pick peaks on a mean spectrum.

    Parameters
    ----------
    mz, intensity, pixel_count:
        The mean spectrum: ascending m/z, mean intensity, and per bin the number of pixels
        (centroids) with signal there.
    n_pixels:
        Number of pixels in the data set, to turn counts into shares.
    settings:
        The ``peaks`` section of the config (snr, separation, smoothing, noise window,
        m/z range, maximum number).
    kind:
        ``ppm_grid`` (histogram of centroids: a peak's pixel count is the sum over its window)
        or ``native`` (continuous axis: the count at the peak's best point).
    tolerance_ppm:
        Half window around a peak used for its centroid m/z and its pixel count (the ion
        images' window).

    Returns
    -------
    DataFrame with columns mz, intensity, snr, pixel_share, sorted by m/z.
    """
    snr, min_pixel_share = settings.snr, settings.min_pixel_share
    mz = np.asarray(mz, dtype=float)
    intensity = np.asarray(intensity, dtype=float)
    if len(mz) < 3:
        return pd.DataFrame(columns=PEAK_COLUMNS)
    sm = smooth(mz, intensity, settings.smooth_ppm)
    cand = local_maxima(sm)
    all_max = cand
    lo, hi = settings.mz_min, settings.mz_max
    if lo is not None:
        cand = cand[mz[cand] >= lo]
    if hi is not None:
        cand = cand[mz[cand] <= hi]
    if len(cand) == 0:
        return pd.DataFrame(columns=PEAK_COLUMNS)
    window_ppm = data_window_ppm(mz, kind, tolerance_ppm)
    reference = all_max
    if window_ppm > tolerance_ppm:
        # Coarse profile data: peaks are dense and most local maxima are real, so the noise
        # comes from the valleys between them (baseline and its scatter) instead.
        reference = local_maxima(sm.max() - sm)
    elif kind == "ppm_grid":
        # Centroids: noise maxima are those too few pixels share to be an ion (and, in a
        # small data set where one pixel is already enough, those of a single pixel)
        _, support = window_stats(mz, intensity, pixel_count, all_max, window_ppm, kind)
        reference = all_max[support < max(min_pixel_share * n_pixels, 2)]
    if kind == "ppm_grid" and len(reference) < MIN_NOISE_MAXIMA:
        log.warning(
            "no noise to measure: %d of %d maxima of the mean spectrum are shared by fewer than"
            " %.1f%% of pixels or by one (no noise centroids?); peaks are picked by pixel share"
            " alone",
            len(reference),
            len(all_max),
            100 * min_pixel_share,
        )
        cand_snr = np.full(len(cand), np.nan)
    else:
        base, noise = local_noise(mz[reference], sm[reference], mz[cand], settings.noise_window_mz)
        cand_snr = (sm[cand] - base) / noise
        keep = cand_snr >= snr
        cand, cand_snr = cand[keep], cand_snr[keep]

    centroid, share = window_stats(mz, intensity, pixel_count, cand, window_ppm, kind)
    share = share / n_pixels
    keep = share >= min_pixel_share
    cand, cand_snr, centroid, share = cand[keep], cand_snr[keep], centroid[keep], share[keep]

    chosen = suppress_neighbours(centroid, sm[cand], settings.min_separation_ppm)
    table = pd.DataFrame(
        {
            "mz": centroid[chosen],
            "intensity": sm[cand][chosen],
            "snr": cand_snr[chosen],
            "pixel_share": np.minimum(share[chosen], 1.0),
        }
    )
    if settings.max_peaks is not None and len(table) > settings.max_peaks:
        table = table.nlargest(settings.max_peaks, "intensity")
    return table.sort_values("mz", ignore_index=True)


def window_stats(
    mz: np.ndarray,
    intensity: np.ndarray,
    pixel_count: np.ndarray,
    apex: np.ndarray,
    tolerance_ppm: float,
    kind: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Centroid m/z and pixel count of the window of ``tolerance_ppm`` around each apex."""
    tol = mz[apex] * tolerance_ppm * 1e-6
    a = np.searchsorted(mz, mz[apex] - tol, side="left")
    b = np.searchsorted(mz, mz[apex] + tol, side="right")
    cw = np.concatenate([[0.0], np.cumsum(intensity)])
    cwm = np.concatenate([[0.0], np.cumsum(intensity * mz)])
    weight = cw[b] - cw[a]
    centroid = np.where(weight > 0, (cwm[b] - cwm[a]) / np.where(weight > 0, weight, 1), mz[apex])
    if kind == "ppm_grid":
        cc = np.concatenate([[0], np.cumsum(pixel_count)])
        count = (cc[b] - cc[a]).astype(float)
    else:
        count = np.array(
            [pixel_count[i:j].max() if j > i else 0 for i, j in zip(a, b, strict=True)], float
        )
    return centroid, count


def suppress_neighbours(
    mz: np.ndarray, height: np.ndarray, min_separation_ppm: float
) -> np.ndarray:
    """Indices of peaks kept when, of any two closer than the limit, only the higher stays."""
    kept_mz: list[float] = []
    kept: list[int] = []
    for i in np.argsort(-height, kind="stable"):
        m = mz[i]
        tol = m * min_separation_ppm * 1e-6
        j = bisect.bisect_left(kept_mz, m - tol)
        if j < len(kept_mz) and kept_mz[j] <= m + tol:
            continue
        bisect.insort(kept_mz, m)
        kept.append(int(i))
    return np.sort(np.asarray(kept, dtype=np.int64))


def peaks_at(
    targets: np.ndarray,
    mz: np.ndarray,
    intensity: np.ndarray,
    pixel_count: np.ndarray,
    n_pixels: int,
    settings: PeakSettings,
    *,
    kind: str,
    tolerance_ppm: float,
) -> pd.DataFrame:
    """Describe user-given m/z values like picked peaks (no filtering, the user decides)."""
    targets = np.sort(np.asarray(targets, dtype=float))
    sm = smooth(mz, intensity, settings.smooth_ppm)
    near = np.clip(np.searchsorted(mz, targets), 0, len(mz) - 1)
    tolerance_ppm = data_window_ppm(mz, kind, tolerance_ppm)
    _, share = window_stats(mz, intensity, pixel_count, near, tolerance_ppm, kind)
    maxima = local_maxima(sm)
    if len(maxima) == 0:
        maxima = np.arange(len(sm))
    base, noise = local_noise(mz[maxima], sm[maxima], targets, settings.noise_window_mz)
    tol = targets * tolerance_ppm * 1e-6
    a = np.searchsorted(mz, targets - tol)
    b = np.searchsorted(mz, targets + tol, side="right")
    height = np.array([sm[i:j].max() if j > i else 0.0 for i, j in zip(a, b, strict=True)])
    return pd.DataFrame(
        {
            "mz": targets,
            "intensity": height,
            "snr": (height - base) / noise,
            "pixel_share": np.minimum(share / n_pixels, 1.0),
        }
    )


def read_mz_list(path: Path) -> np.ndarray:
    """m/z values from a TSV (or .csv) with an ``mz`` column, or a headerless single column."""
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        table = pd.read_csv(path, sep=sep, dtype=str)
    except Exception as err:
        raise InputError(path, f"cannot read the m/z list ({err})") from None
    if "mz" in table.columns:
        column = table["mz"]
    elif table.shape[1] == 1:  # no header: the first line is a value too
        column = pd.concat([pd.Series(table.columns), table.iloc[:, 0]], ignore_index=True)
    else:
        raise InputError(path, "m/z list needs a column named 'mz'")
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    if len(values) == 0 or not np.isfinite(values).all() or (values <= 0).any():
        raise InputError(path, "m/z list must hold positive numbers only (column 'mz')")
    return values


def write_peaks(table: pd.DataFrame, path: Path) -> None:
    """Write peaks.tsv (columns :data:`PEAK_COLUMNS`, ascending m/z) atomically."""
    from msicoloc.step import atomic_output

    with atomic_output(path) as tmp:
        table[PEAK_COLUMNS].to_csv(tmp, sep="\t", index=False, float_format="%.6f")


def read_peaks(path: Path) -> np.ndarray:
    """The peak m/z values of a peaks.tsv."""
    mz = pd.read_csv(path, sep="\t")["mz"].to_numpy(dtype=float)
    if len(mz) == 0:
        raise InputError(path, "no peaks to extract")
    return mz
