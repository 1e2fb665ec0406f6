"""Convert one imzML + ibd pair to the workflow's HDF5 spectra file (streaming)."""

import logging
from pathlib import Path

from msicoloc.settings import ConvertSettings
from msicoloc.spectra import convert
from msicoloc.step import atomic_output, run_step

log = logging.getLogger("convert")


def main(
    imzml: Path,
    spectra: Path,
    *,
    settings: ConvertSettings,
    chunk_values: int,
    dataset: str = "cli",
) -> None:
    """Convert an imzML file (continuous or processed; its .ibd beside it) to spectra.h5."""
    log.info("dataset %s: converting %s", dataset, imzml)
    with atomic_output(spectra) as tmp:
        info = convert(imzml, tmp, settings, max_values=chunk_values)
    log.info(
        "%s mode, %d pixels (%d empty), image %s, m/z %s / intensity %s",
        info["mode"],
        info["n_pixels"],
        info["n_empty_spectra"],
        "x".join(map(str, info["image_shape"])),
        info["mz_dtype"],
        info["intensity_dtype"],
    )


if __name__ == "__main__":
    run_step(main, inputs=["imzml"], outputs=["spectra"])
