"""Shared fixtures: tiny imzML files written with pyimzml's own writer (an independent
reference for our reader), and helpers to run step scripts as a user would."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"


def workflow_settings(section: str, **changes):
    """The settings object the workflow builds from ``config/config.yaml``'s ``section``,
    with ``changes`` (nested sections take a mapping): tests run the workflow's settings."""
    from msicoloc.settings import SECTIONS, from_config, replace
    from msicoloc.step import read_config

    config, _ = read_config(ROOT / "config" / "config.yaml")
    return replace(from_config(SECTIONS[section], config[section]), **changes)


CONVERT = workflow_settings("convert")


def write_small_imzml(
    path: Path,
    *,
    mode: str = "processed",
    mz_dtype=np.float64,
    intensity_dtype=np.float32,
    shape: tuple[int, int] = (6, 7),
    seed: int = 0,
    empty_pixels: int = 1,
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """A small random data set; returns (coords, spectra) as the reader should see them.

    The first ``empty_pixels`` spectra are made empty afterwards (pyimzml cannot write an
    empty spectrum, real instruments do).
    """
    from pyimzml.ImzMLWriter import ImzMLWriter

    rng = np.random.default_rng(seed)
    h, w = shape
    coords = np.array([(x, y) for y in range(1, h + 1) for x in range(1, w + 1)])
    axis = np.sort(rng.uniform(100, 900, 60))
    spectra = []
    with ImzMLWriter(
        str(path), mz_dtype=mz_dtype, intensity_dtype=intensity_dtype, mode=mode
    ) as wr:
        for x, y in coords:
            if mode == "continuous":
                mz = axis
                inten = rng.exponential(10, len(axis)) * (rng.random(len(axis)) < 0.6)
            else:
                n = int(rng.integers(1, 40))
                mz = np.sort(rng.uniform(100, 900, n))
                inten = rng.exponential(10, n)
            mz, inten = mz.astype(mz_dtype), inten.astype(intensity_dtype)
            wr.addSpectrum(mz, inten, (int(x), int(y)))
            spectra.append((mz, inten))
    if mode == "processed" and empty_pixels:
        empty_spectra(path, range(empty_pixels))
        for i in range(empty_pixels):
            spectra[i] = (spectra[i][0][:0], spectra[i][1][:0])
    return coords, spectra


def empty_spectra(path: Path, which) -> None:
    """Set the array lengths of the given spectra to 0 in the imzML XML."""
    text = Path(path).read_text()
    parts = re.split(r"(<spectrum )", text)
    # parts: [header, "<spectrum ", body0, "<spectrum ", body1, ...]
    for i in which:
        k = 2 + 2 * i
        parts[k] = re.sub(
            r'(accession="IMS:1000103"[^>]*value=")\d+"',
            r'\g<1>0"',
            parts[k],
        )
    Path(path).write_text("".join(parts))


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    """Run scripts/<name> as a CLI, capturing its output."""
    return subprocess.run(
        [sys.executable, str(SCRIPTS / name), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


@pytest.fixture
def processed_file(tmp_path):
    path = tmp_path / "p.imzML"
    coords, spectra = write_small_imzml(path)
    return path, coords, spectra


@pytest.fixture
def continuous_file(tmp_path):
    path = tmp_path / "c.imzML"
    coords, spectra = write_small_imzml(path, mode="continuous", intensity_dtype=np.float64)
    return path, coords, spectra
