"""Extract every picked peak's ion image in one pass over the spectra."""

import logging
from pathlib import Path

import numpy as np

from msicoloc.images import build_ion_images, montage
from msicoloc.peaks import data_window_ppm, read_peaks
from msicoloc.settings import IonImageSettings
from msicoloc.spectra import SpectraFile
from msicoloc.step import atomic_output, run_step

log = logging.getLogger("ion_images")


def main(
    spectra: Path,
    peaks: Path,
    images: Path,
    montage_png: Path,
    *,
    settings: IonImageSettings,
    chunk_values: int,
    dataset: str = "cli",
) -> None:
    """Write ion_images.h5 (images n x H x W and a small level, mz, mask, clip_value) and a
    PNG montage."""
    peak_mz = read_peaks(peaks)
    with SpectraFile(spectra) as sf:
        axis, _, _, kind = sf.mean_spectrum()
        tolerance = data_window_ppm(axis, kind, settings.tolerance_ppm)
        if tolerance > settings.tolerance_ppm:
            log.warning(
                "m/z axis sampled more coarsely than ion_images.tolerance_ppm=%g (low-resolution "
                "profile data): windows of +-%.0f ppm instead",
                settings.tolerance_ppm,
                tolerance,
            )
        quantile = settings.hotspot_quantile
        built = build_ion_images(
            sf,
            peak_mz,
            tolerance,
            settings,
            images,
            max_values=chunk_values,
            dataset=dataset,
            source_imzml=str(sf.attrs.get("source_imzml", "")),
            tolerance_ppm=tolerance,
            normalisation=settings.normalisation,
            hotspot_quantile=np.nan if quantile is None else quantile,
        )
        shape = sf.image_shape
    log.info(
        "%d ion images of %dx%d, %d tissue pixels (%s); %d images empty on tissue",
        len(peak_mz),
        *shape,
        built["tissue"],
        built["rule"],
        int((built["clip_value"] <= 0).sum()),
    )
    pick, preview = built["preview"]
    with atomic_output(montage_png) as tmp:
        montage(
            preview, peak_mz[pick], tmp, max_images=len(pick), title=dataset, total=len(peak_mz)
        )


if __name__ == "__main__":
    run_step(main, inputs=["spectra", "peaks"], outputs=["images", "montage_png"])
