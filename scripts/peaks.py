"""Pick peaks on a data set's mean spectrum, or describe a user-given m/z list."""

import logging
from pathlib import Path

from msicoloc import InputError
from msicoloc.peaks import peaks_at, pick_peaks, read_mz_list, write_peaks
from msicoloc.settings import IonImageSettings, PeakSettings
from msicoloc.spectra import SpectraFile
from msicoloc.step import run_step

log = logging.getLogger("peaks")


def main(
    spectra: Path,
    peaks: Path,
    *,
    settings: PeakSettings,
    ion_images: IonImageSettings,
    mz_list: Path | None = None,
    dataset: str = "cli",
) -> None:
    """Write peaks.tsv (mz, intensity, snr, pixel_share) for one data set.

    ``mz_list`` (a file with an ``mz`` column; the sheet's column or peaks.mz_list) replaces
    peak picking; a peak's window is the ion images' (ion_images.tolerance_ppm).
    """
    with SpectraFile(spectra) as sf:
        mz, inten, count, kind = sf.mean_spectrum()
        n_pixels = sf.n_pixels
    spectrum = (mz, inten, count, n_pixels, settings)
    common = {"kind": kind, "tolerance_ppm": ion_images.tolerance_ppm}
    mz_list = mz_list or settings.mz_list
    if mz_list:
        table = peaks_at(read_mz_list(Path(mz_list)), *spectrum, **common)
        log.info("%d m/z values from %s", len(table), mz_list)
    else:
        table = pick_peaks(*spectrum, **common)
        if table.empty:
            raise InputError(
                spectra,
                f"no peak with SNR >= {settings.snr} in >= {settings.min_pixel_share:.1%} of "
                "pixels; lower peaks.snr / peaks.min_pixel_share or give an m/z list",
            )
        log.info("%d peaks picked (m/z %.4f-%.4f)", len(table), table.mz.min(), table.mz.max())
    write_peaks(table, peaks)


if __name__ == "__main__":
    run_step(main, inputs=["spectra"], outputs=["peaks"])
