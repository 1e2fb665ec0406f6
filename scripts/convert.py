"""Convert one imzML + ibd pair to the workflow's HDF5 spectra file (streaming)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import logging

from msicoloc.io import convert
from msicoloc.step import atomic_output, run_step

log = logging.getLogger("convert")


def main(
    imzml: Path,
    spectra: Path,
    *,
    dataset: str = "cli",
    mean_bin_ppm: float = 1.0,
    verify_checksum: bool = True,
    chunk_values: int = 4_000_000,
) -> None:
    """Convert an imzML file (continuous or processed) to spectra.h5.

    Parameters
    ----------
    imzml
        The .imzML file; its .ibd must lie beside it.
    spectra
        The HDF5 file to write (results/{dataset}/spectra.h5).
    dataset
        Data set id, for messages.
    mean_bin_ppm
        Bin width (ppm) of the grid on which the mean spectrum of processed data is summed.
    verify_checksum
        Compare the .ibd's SHA-1/MD5 with the one recorded in the imzML.
    chunk_values
        Values (peaks) read per chunk; bounds memory (about 12 bytes each, several copies).
    """
    log.info("dataset %s: converting %s", dataset, imzml)
    with atomic_output(spectra) as tmp:
        info = convert(
            imzml,
            tmp,
            mean_bin_ppm=mean_bin_ppm,
            verify_checksum=verify_checksum,
            max_values=chunk_values,
        )
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
    run_step(
        main,
        inputs=["imzml"],
        outputs=["spectra"],
        execution={"chunk_values": ("convert", "chunk_values")},
    )
