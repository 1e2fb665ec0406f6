"""End-to-end Snakemake runs on tiny synthetic imzML, in a copy of the workflow."""

import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

pytestmark = pytest.mark.e2e

# Small and quick learning settings: the tests check the plumbing, not the quality.
FAST = """
simclr: {image_size: 32, epochs: 2, batch_size: 16}
self_label: {init_epochs: 2, epochs: 2, batch_size: 16}
"""
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
    (work / "test.yaml").write_text("datasets: sheet.tsv\n" + FAST)
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


def test_learning_outputs(tiny_run):
    out = tiny_run / "results" / "tiny"
    clusters = pd.read_csv(out / "clusters.tsv", sep="\t")
    assert list(clusters.columns) == ["mz", "cluster", "confidence", "sc_cluster"]
    assert clusters.cluster.between(0, 2).all() and clusters.confidence.between(0, 1).all()
    with h5py.File(out / "embeddings.h5") as h5:
        assert h5["features"].shape == (len(clusters), h5["features_untrained"].shape[1])
    history = pd.read_csv(out / "model" / "simclr_history.tsv", sep="\t")
    assert list(history.epoch) == [1, 2] and np.isfinite(history.loss).all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["methods"]) == {
        "pixel_cosine_sc",
        "metaspace_sc",
        "untrained_sc",
        "simclr_sc",
        "simclr_selflabel",
    }
    assert 0 <= metrics["methods"]["simclr_selflabel"]["hungarian_accuracy"] <= 1


def test_same_seed_gives_identical_clusters(tiny_run):
    """Same seed, same machine, CPU: retraining from scratch gives byte-identical results."""
    out = tiny_run / "results" / "tiny"
    before = {p: (out / p).read_bytes() for p in ("clusters.tsv", "clusters_sc.tsv")}
    res = snakemake(tiny_run, "--configfile", "test.yaml", "--forcerun", "train_simclr")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "train_simclr" in res.stdout + res.stderr  # it did retrain
    for name, data in before.items():
        assert (out / name).read_bytes() == data, name


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
