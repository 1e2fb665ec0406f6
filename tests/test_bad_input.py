"""Every kind of bad input ends with one line naming the data set, the file and the problem,
and leaves no output behind."""

import re
import subprocess
import sys
import uuid

import numpy as np
import pytest
from conftest import ROOT, empty_spectra, run_script, write_small_imzml
from pyimzml.ImzMLWriter import ImzMLWriter


def write_spectra(path, spectra, coords):
    with ImzMLWriter(str(path), mode="processed") as w:
        for (mz, inten), xy in zip(spectra, coords, strict=True):
            w.addSpectrum(np.asarray(mz, float), np.asarray(inten, np.float32), xy)


def good_file(tmp_path):
    path = tmp_path / "bad.imzML"
    write_small_imzml(path, empty_pixels=0)
    return path


def assert_clean_failure(result, out, *words):
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    line = errors[0]
    assert "dataset mydata:" in line
    for w in words:
        assert re.search(w, line, re.IGNORECASE), line
    assert not out.exists()
    assert not list(out.parent.glob("*.tmp-*"))


def convert(path, tmp_path, *extra):
    out = tmp_path / "out" / "spectra.h5"
    out.parent.mkdir(exist_ok=True)
    res = run_script("convert.py", "--imzml", path, "--spectra", out, "--dataset", "mydata", *extra)
    return res, out


def test_missing_ibd(tmp_path):
    path = good_file(tmp_path)
    path.with_suffix(".ibd").unlink()
    assert_clean_failure(*convert(path, tmp_path), r"bad\.ibd", "missing")


def test_truncated_ibd(tmp_path):
    path = good_file(tmp_path)
    ibd = path.with_suffix(".ibd")
    ibd.write_bytes(ibd.read_bytes()[:-100])
    assert_clean_failure(*convert(path, tmp_path), r"bad\.ibd", "truncated")


def test_malformed_xml(tmp_path):
    path = good_file(tmp_path)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    assert_clean_failure(*convert(path, tmp_path), r"bad\.imzML", "malformed")


def test_uuid_mismatch(tmp_path):
    path = good_file(tmp_path)
    ibd = path.with_suffix(".ibd")
    data = bytearray(ibd.read_bytes())
    data[:16] = uuid.uuid4().bytes
    ibd.write_bytes(bytes(data))
    assert_clean_failure(*convert(path, tmp_path), r"bad\.ibd", "UUID", "does not match")


def test_checksum_mismatch(tmp_path):
    path = good_file(tmp_path)
    ibd = path.with_suffix(".ibd")
    data = bytearray(ibd.read_bytes())
    data[-3] ^= 0xFF
    ibd.write_bytes(bytes(data))
    assert_clean_failure(*convert(path, tmp_path), r"bad\.ibd", "SHA-1", "does not match")
    # the check can be switched off for files whose checksum is known to be stale
    res, out = convert(path, tmp_path, "--convert.verify_checksum", "false")
    assert res.returncode == 0 and out.exists()


def test_nan_intensity(tmp_path):
    path = tmp_path / "bad.imzML"
    spectra = [([100.0, 200.0], [1.0, 2.0]), ([100.0, 200.0], [np.nan, 2.0])]
    write_spectra(path, spectra, [(1, 1), (2, 1)])
    assert_clean_failure(*convert(path, tmp_path), r"bad\.ibd", "spectrum 1", "NaN")


def test_infinite_mz(tmp_path):
    path = tmp_path / "bad.imzML"
    write_spectra(path, [([100.0, np.inf], [1.0, 2.0])], [(1, 1)])
    assert_clean_failure(*convert(path, tmp_path), "m/z", "infinite")


def test_unsorted_mz(tmp_path):
    path = tmp_path / "bad.imzML"
    spectra = [([100.0, 200.0], [1.0, 2.0]), ([300.0, 200.0, 400.0], [1.0, 2.0, 3.0])]
    write_spectra(path, spectra, [(1, 1), (2, 1)])
    assert_clean_failure(*convert(path, tmp_path), "spectrum 1", "x=2, y=1", "ascending")


def test_duplicate_coordinates(tmp_path):
    path = tmp_path / "bad.imzML"
    spectra = [([100.0], [1.0])] * 3
    write_spectra(path, spectra, [(1, 1), (2, 1), (1, 1)])
    assert_clean_failure(*convert(path, tmp_path), r"bad\.imzML", "duplicate", r"\(1, 1, 1\)")


def test_coordinate_below_one(tmp_path):
    path = tmp_path / "bad.imzML"
    write_spectra(path, [([100.0], [1.0])] * 2, [(1, 1), (0, 1)])
    assert_clean_failure(*convert(path, tmp_path), r"bad\.imzML", "below 1")


def test_coordinate_beyond_declared_size(tmp_path):
    path = good_file(tmp_path)  # 7 x 6 pixels
    text = path.read_text()
    text, n = re.subn(r'(accession="IMS:1000042"[^>]*value=")\d+"', r'\g<1>5"', text)
    assert n == 1
    path.write_text(text)
    assert_clean_failure(*convert(path, tmp_path), "x = 6 beyond 'max count of pixels x' = 5")


def test_all_spectra_empty(tmp_path):
    path = good_file(tmp_path)
    empty_spectra(path, range(42))
    assert_clean_failure(*convert(path, tmp_path), r"bad\.imzML", "every spectrum is empty")


def test_no_peak_above_threshold(tmp_path):
    path = good_file(tmp_path)
    res, spectra = convert(path, tmp_path)
    assert res.returncode == 0
    out = tmp_path / "out" / "peaks.tsv"
    args = ["--spectra", spectra, "--peaks", out, "--dataset", "mydata", "--peaks.snr", "1e9"]
    res = run_script("peaks.py", *args)
    assert_clean_failure(res, out, r"spectra\.h5", "no peak with SNR")


def test_bad_mz_list(tmp_path):
    path = good_file(tmp_path)
    res, spectra = convert(path, tmp_path)
    mz_list = tmp_path / "list.tsv"
    mz_list.write_text("mz\n100.5\nabc\n")
    out = tmp_path / "out" / "peaks.tsv"
    res = run_script(
        "peaks.py",
        "--spectra",
        spectra,
        "--peaks",
        out,
        "--dataset",
        "mydata",
        "--mz-list",
        mz_list,
    )
    assert_clean_failure(res, out, r"list\.tsv", "positive numbers")


# --- the sample sheet: checked before any job starts -------------------------------------


def dry_run(tmp_path, sheet_text):
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text(sheet_text)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"datasets: {sheet}\n")
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--dry-run", "--configfile", str(cfg)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


@pytest.fixture
def imzml(tmp_path):
    return good_file(tmp_path)


@pytest.mark.parametrize(
    "rows, message",
    [
        ("a\t{f}\nb\t{f}\na\t{f}\n", "line 4: duplicate dataset id 'a'"),
        ("a\t{f}\nb\t/nowhere/x.imzML\n", r"line 3 \(b\): imzml file not found: /nowhere/x.imzML"),
        ("a b\t{f}\n", r"line 2 \(a b\): dataset: 'a b' does not match"),
        ("a\t{f}\tmissing_annotations.tsv\n", "annotations file not found"),
        ("a\t{f}\t\tseven\n", "n_clusters 'seven' is neither an integer nor auto"),
        ("a\t{f}\t\t1\n", "n_clusters: 1 is less than the minimum of 2"),
    ],
)
def test_bad_sheet(tmp_path, imzml, rows, message):
    header = "dataset\timzml\tannotations\tn_clusters\n"
    res = dry_run(tmp_path, header + rows.format(f=imzml))
    assert res.returncode != 0
    text = res.stdout + res.stderr
    assert re.search(r"sample sheet \S+sheet\.tsv: .*" + message, text), text
    assert not (ROOT / "results" / "a").exists()


def test_sheet_missing_ibd(tmp_path, imzml):
    imzml.with_suffix(".ibd").unlink()
    res = dry_run(tmp_path, f"dataset\timzml\nd1\t{imzml}\n")
    assert res.returncode != 0
    assert re.search(r"line 2 \(d1\): no \.ibd file beside", res.stdout + res.stderr)


def test_sheet_unknown_column(tmp_path, imzml):
    res = dry_run(tmp_path, f"dataset\timzml\tcolour\nd1\t{imzml}\tred\n")
    assert res.returncode != 0
    assert "unknown column(s) ['colour']" in res.stdout + res.stderr


# --- learning stages -----------------------------------------------------------------------


def ion_images(path, n=20, h=12, w=14, *, constant=False, seed=0):
    """A small ion_images.h5: n random images (or all-zero ones) on a full mask."""
    import h5py

    rng = np.random.default_rng(seed)
    images = np.zeros((n, h, w), np.float32) if constant else rng.random((n, h, w), np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("mz", data=np.linspace(150.0, 900.0, n))
        f.create_dataset("mask", data=np.ones((h, w), bool))
    return path


def train(tmp_path, images, *extra):
    out = tmp_path / "out" / "simclr.pt"
    out.parent.mkdir(exist_ok=True)
    res = run_script(
        "train_simclr.py",
        "--images",
        images,
        "--model",
        out,
        "--history",
        out.parent / "history.tsv",
        "--simclr.epochs",
        "1",
        "--simclr.batch_size",
        "8",
        "--dataset",
        "mydata",
        *extra,
    )
    assert not (out.parent / "history.tsv").exists()
    return res, out


@pytest.mark.parametrize(
    ("kwargs", "extra", "words"),
    [
        ({"constant": True}, [], ["all 20 ion images are constant"]),
        ({"h": 1, "w": 40}, [], ["1 x 40 pixels", "single row"]),
        ({}, ["--simclr.pretrained", "/nonexistent/weights.pt"], ["weights.pt", "not found"]),
        ({}, ["--device", "cuda"], ["device=cuda", "no GPU"]),
        ({}, ["--simclr.encoder", "no_such_net"], ["no_such_net", "not a timm model"]),
    ],
    ids=["all-zero", "single-row", "missing-weights", "cuda", "encoder"],
)
def test_training_bad_input(tmp_path, kwargs, extra, words):
    if "cuda" in extra:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    res, out = train(tmp_path, ion_images(tmp_path / "ion_images.h5", **kwargs), *extra)
    assert_clean_failure(res, out, *words)


def test_training_with_weights_of_another_encoder(tmp_path):
    import timm
    import torch

    weights = tmp_path / "resnet18.pt"
    torch.save(timm.create_model("resnet18", num_classes=0, in_chans=1).state_dict(), weights)
    images = ion_images(tmp_path / "ion_images.h5")
    res, out = train(tmp_path, images, "--simclr.pretrained", weights)
    assert_clean_failure(res, out, "resnet18.pt", "does not fit encoder mobilenetv3_small_100")


def test_fewer_images_than_clusters(tmp_path):
    import h5py

    emb = tmp_path / "embeddings.h5"
    with h5py.File(emb, "w") as f:
        f.create_dataset("features", data=np.random.default_rng(0).random((5, 8)))
        f.create_dataset("mz", data=np.arange(5.0))
    out = tmp_path / "out" / "clusters_sc.tsv"
    out.parent.mkdir()
    res = run_script(
        "cluster.py",
        "--embeddings",
        emb,
        "--clusters",
        out,
        "--cluster.n_clusters",
        "6",
        "--dataset",
        "mydata",
    )
    assert_clean_failure(res, out, "embeddings.h5", "only 5 ion images for n_clusters=6")
