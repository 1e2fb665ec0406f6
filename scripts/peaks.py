"""Pick peaks on a data set's mean spectrum, or describe a user-given m/z list."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import logging

import numpy as np
import pandas as pd

from msicoloc import InputError
from msicoloc.io import SpectraFile
from msicoloc.peaks import peaks_at, pick_peaks
from msicoloc.step import atomic_output, run_step

log = logging.getLogger("peaks")


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


def main(
    spectra: Path,
    peaks: Path,
    *,
    mz_list: Path | None = None,
    dataset: str = "cli",
    snr: float = 5.0,
    min_separation_ppm: float = 10.0,
    min_pixel_share: float = 0.01,
    smooth_ppm: float = 2.0,
    tolerance_ppm: float = 10.0,
    noise_window_mz: float = 25.0,
    mz_min: float | None = None,
    mz_max: float | None = None,
    max_peaks: int | None = None,
) -> None:
    """Write peaks.tsv (mz, intensity, snr, pixel_share) for one data set.

    Parameters
    ----------
    spectra
        spectra.h5 written by the convert step.
    peaks
        peaks.tsv to write.
    mz_list
        Optional file of m/z values (column 'mz') to use instead of peak picking.
    dataset
        Data set id, for messages.
    snr
        Minimum signal-to-noise ratio of a peak on the smoothed mean spectrum.
    min_separation_ppm
        Of two peaks closer than this, only the higher is kept.
    min_pixel_share
        Minimum share of pixels (0-1) in which a peak is present.
    smooth_ppm
        Gaussian sigma (ppm) applied to the mean spectrum before picking.
    tolerance_ppm
        Half width (ppm) of a peak's window, the same as for ion-image extraction.
    noise_window_mz
        Width (m/z) of the windows in which the noise level is estimated.
    mz_min
        Ignore peaks below this m/z.
    mz_max
        Ignore peaks above this m/z.
    max_peaks
        Keep only the N most intense peaks.
    """
    with SpectraFile(spectra) as sf:
        mz, inten, count, kind = sf.mean_spectrum()
        n_pixels = sf.n_pixels
    common = dict(
        kind=kind,
        smooth_ppm=smooth_ppm,
        tolerance_ppm=tolerance_ppm,
        noise_window_mz=noise_window_mz,
    )
    if mz_list:
        table = peaks_at(read_mz_list(Path(mz_list)), mz, inten, count, n_pixels, **common)
        log.info("%d m/z values from %s", len(table), mz_list)
    else:
        table = pick_peaks(
            mz,
            inten,
            count,
            n_pixels,
            snr=snr,
            min_separation_ppm=min_separation_ppm,
            min_pixel_share=min_pixel_share,
            mz_range=(mz_min, mz_max),
            max_peaks=max_peaks,
            **common,
        )
        if table.empty:
            raise InputError(
                spectra,
                f"no peak with SNR >= {snr} in >= {min_pixel_share:.1%} of pixels; "
                "lower peaks.snr / peaks.min_pixel_share or give an m/z list",
            )
        log.info("%d peaks picked (m/z %.4f-%.4f)", len(table), table.mz.min(), table.mz.max())
    with atomic_output(peaks) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6f")


if __name__ == "__main__":
    run_step(main, inputs=["spectra"], outputs=["peaks"])
