"""Extract every picked peak's ion image in one pass over the spectra."""

import logging
from pathlib import Path

import numpy as np

from msicoloc import InputError
from msicoloc.images import (
    clip_hotspots,
    extract,
    montage,
    normalise,
    tissue_mask,
    to_stack,
    write_ion_images,
)
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
    """Write ion_images.h5 (images n x H x W, mz, mask, clip_value) and a PNG montage."""
    peak_mz = read_peaks(peaks)
    with SpectraFile(spectra) as sf:
        rows, cols = sf.pixels("row"), sf.pixels("col")
        tic, rms = sf.pixels("tic"), sf.pixels("rms")
        shape = sf.image_shape
        axis, _, _, kind = sf.mean_spectrum()
        tolerance = data_window_ppm(axis, kind, settings.tolerance_ppm)
        if tolerance > settings.tolerance_ppm:
            log.warning(
                "m/z axis sampled more coarsely than ion_images.tolerance_ppm=%g (low-resolution "
                "profile data): windows of +-%.0f ppm instead",
                settings.tolerance_ppm,
                tolerance,
            )
        values = extract(sf, peak_mz, tolerance, max_values=chunk_values)
        source = str(sf.attrs.get("source_imzml", ""))
    normalise(values, settings.normalisation, tic, rms)
    tissue, rule = tissue_mask(tic, rows, cols, shape, settings.mask)
    on = tissue[rows, cols]
    if on.sum() == 0:
        raise InputError(spectra, "the tissue mask is empty: no pixel has signal")
    values = values[:, on]
    caps = clip_hotspots(values, settings.hotspot_quantile)
    stack = to_stack(values, rows[on], cols[on], shape)
    log.info(
        "%d ion images of %dx%d, %d tissue pixels (%s); %d images empty on tissue",
        len(stack),
        *shape,
        int(on.sum()),
        rule,
        int((caps <= 0).sum()),
    )
    quantile = settings.hotspot_quantile
    write_ion_images(
        images,
        stack,
        peak_mz,
        tissue,
        caps,
        dataset=dataset,
        source_imzml=source,
        tolerance_ppm=tolerance,
        normalisation=settings.normalisation,
        hotspot_quantile=np.nan if quantile is None else quantile,
        mask_rule=rule,
    )
    with atomic_output(montage_png) as tmp:
        montage(stack, peak_mz, tmp, max_images=settings.montage_max, title=dataset)


if __name__ == "__main__":
    run_step(main, inputs=["spectra", "peaks"], outputs=["images", "montage_png"])
