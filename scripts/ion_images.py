"""Extract every picked peak's ion image in one pass over the spectra."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import logging
from typing import Literal

import h5py
import numpy as np
import pandas as pd

from msicoloc import InputError
from msicoloc.images import clip_hotspots, extract, montage, normalise, tissue_mask, to_stack
from msicoloc.io import SpectraFile
from msicoloc.step import atomic_output, run_step

log = logging.getLogger("ion_images")


def main(
    spectra: Path,
    peaks: Path,
    images: Path,
    montage_png: Path,
    *,
    dataset: str = "cli",
    tolerance_ppm: float = 10.0,
    normalisation: Literal["tic", "rms", "none"] = "tic",
    hotspot_quantile: float | None = 0.99,
    mask: Literal["auto", "otsu", "measured"] = "auto",
    montage_max: int = 100,
    chunk_values: int = 4_000_000,
) -> None:
    """Write ion_images.h5 (images n x H x W, mz, mask) and a PNG montage.

    Parameters
    ----------
    spectra
        spectra.h5 written by the convert step.
    peaks
        peaks.tsv written by the peaks step (column mz).
    images
        ion_images.h5 to write.
    montage_png
        PNG montage of the ion images to write.
    dataset
        Data set id, for messages.
    tolerance_ppm
        Half width (ppm) of the m/z window summed into each ion image.
    normalisation
        Per-pixel normalisation: total ion current, root mean square, or none.
    hotspot_quantile
        Clip each image at this quantile of its tissue pixels (None or 1 = no clipping).
    mask
        Tissue mask: 'measured' (all pixels with signal), 'otsu' (threshold on log TIC) or
        'auto' (Otsu only when log TIC is clearly bimodal).
    montage_max
        At most this many images in the montage (evenly spread over m/z).
    chunk_values
        Values (peaks) read per chunk; bounds memory.
    """
    peak_mz = pd.read_csv(peaks, sep="\t")["mz"].to_numpy(dtype=float)
    if len(peak_mz) == 0:
        raise InputError(peaks, "no peaks to extract")
    with SpectraFile(spectra) as sf:
        rows, cols = sf.pixels("row"), sf.pixels("col")
        tic, rms = sf.pixels("tic"), sf.pixels("rms")
        shape = sf.image_shape
        values = extract(sf, peak_mz, tolerance_ppm, max_values=chunk_values)
        source = str(sf.attrs.get("source_imzml", ""))
    normalise(values, normalisation, tic, rms)
    tissue, rule = tissue_mask(tic, rows, cols, shape, mask)
    on = tissue[rows, cols]
    if on.sum() == 0:
        raise InputError(spectra, "the tissue mask is empty: no pixel has signal")
    values = values[:, on]
    caps = clip_hotspots(values, hotspot_quantile)
    stack = to_stack(values, rows[on], cols[on], shape)
    empty = int((caps <= 0).sum())
    log.info(
        "%d ion images of %dx%d, %d tissue pixels (%s); %d images empty on tissue",
        len(stack),
        *shape,
        int(on.sum()),
        rule,
        empty,
    )
    with atomic_output(images) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("images", data=stack, chunks=(1, *shape))
        h5.create_dataset("mz", data=peak_mz)
        h5.create_dataset("mask", data=tissue)
        h5.create_dataset("clip_value", data=caps)
        h5.attrs.update(
            dataset=dataset,
            source_imzml=source,
            tolerance_ppm=tolerance_ppm,
            normalisation=normalisation,
            hotspot_quantile=np.nan if hotspot_quantile is None else hotspot_quantile,
            mask_rule=rule,
        )
    with atomic_output(montage_png) as tmp:
        montage(stack, peak_mz, tmp, max_images=montage_max, title=dataset)


if __name__ == "__main__":
    run_step(
        main,
        inputs=["spectra", "peaks"],
        outputs=["images", "montage_png"],
        execution={"chunk_values": ("convert", "chunk_values")},
    )
