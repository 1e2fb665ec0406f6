"""End-to-end Snakemake runs on tiny synthetic imzML, in a copy of the workflow."""

import shutil
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

pytestmark = pytest.mark.e2e

COPY = ["Snakefile", "rules", "scripts", "config", "envs", "profiles", "resources"]


def workflow_copy(dest):
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("demo", "__pycache__"))
        else:
            shutil.copy(src, dest / name)
    return dest


def snakemake(workdir, *args):
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny processed data set run through the workflow once, shared by the tests."""
    from msicoloc.synth import make_dataset

    work = workflow_copy(tmp_path_factory.mktemp("wf"))
    data = work / "data"
    data.mkdir()
    make_dataset(
        data / "tiny.imzML",
        data / "tiny_ann.tsv",
        height=20,
        width=24,
        n_classes=3,
        n_ions=24,
        seed=1,
    )
    (work / "sheet.tsv").write_text(
        "dataset\timzml\tannotations\tn_clusters\ntiny\tdata/tiny.imzML\tdata/tiny_ann.tsv\t3\n"
    )
    (work / "test.yaml").write_text("datasets: sheet.tsv\n")
    res = snakemake(work, "--configfile", "test.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    return work


def test_outputs_exist_and_agree(tiny_run):
    out = tiny_run / "results" / "tiny"
    peaks = pd.read_csv(out / "peaks.tsv", sep="\t")
    assert list(peaks.columns) == ["mz", "intensity", "snr", "pixel_share"]
    with h5py.File(out / "ion_images.h5") as h5:
        images, mz, mask = h5["images"][:], h5["mz"][:], h5["mask"][:]
        assert h5.attrs["normalisation"] == "tic"
    assert images.shape == (len(peaks), 20, 24) and images.dtype == np.float32
    np.testing.assert_allclose(mz, peaks.mz)
    assert mask.dtype == bool and 0 < mask.sum() < mask.size
    assert (images[:, ~mask] == 0).all()
    assert (out / "ion_images.png").stat().st_size > 10_000
    for step in ("convert", "peaks", "ion_images"):
        assert (out / "logs" / f"{step}.log").exists()
        assert (out / "benchmarks" / f"{step}.tsv").exists()


def test_second_run_does_nothing(tiny_run):
    res = snakemake(tiny_run, "--configfile", "test.yaml", "--dry-run")
    assert res.returncode == 0
    assert "Nothing to be done" in res.stdout + res.stderr


def test_step_runs_from_the_command_line(tiny_run, tmp_path):
    out = tiny_run / "results" / "tiny"
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "peaks.py"),
            "--spectra",
            str(out / "spectra.h5"),
            "--peaks",
            str(tmp_path / "p.tsv"),
            "--max-peaks",
            "5",
            "--log",
            str(tmp_path / "l"),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert len(pd.read_csv(tmp_path / "p.tsv", sep="\t")) == 5
    assert "5 peaks picked" in (tmp_path / "l").read_text()


def test_failed_step_leaves_no_output_and_one_line(tmp_path):
    """A corrupt .ibd stops the run with the data set, the file and the problem in one line."""
    from msicoloc.synth import make_dataset

    work = workflow_copy(tmp_path)
    make_dataset(work / "bad.imzML", work / "ann.tsv", height=16, width=16, n_classes=2, n_ions=6)
    ibd = work / "bad.ibd"
    ibd.write_bytes(ibd.read_bytes()[:-50])
    (work / "sheet.tsv").write_text("dataset\timzml\nbroken\tbad.imzML\n")
    (work / "test.yaml").write_text("datasets: sheet.tsv\n")
    res = snakemake(work, "--configfile", "test.yaml")
    assert res.returncode != 0
    text = res.stdout + res.stderr
    assert "ERROR dataset broken: bad.ibd: truncated" in text, text
    assert not (work / "results" / "broken" / "spectra.h5").exists()
