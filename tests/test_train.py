"""Training loops, determinism, bad input, and the learning step scripts."""

from __future__ import annotations

import importlib.util
import logging

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SCRIPTS, run_script, workflow_settings
from scipy.ndimage import gaussian_filter

from msicoloc import InputError
from msicoloc.images import read_ion_images
from msicoloc.names import write_names
from msicoloc.settings import replace
from msicoloc.train import (
    check_images,
    embed,
    load_encoder,
    resolve_device,
    self_label,
    train_simclr,
)

# The workflow's settings, with a smaller network, fewer epochs and smaller batches;
# coordinate channels off so that the encoder's own layers are compared below.
SIMCLR = workflow_settings(
    "simclr", encoder="mobilenetv3_small_050", coord_channels=False, batch_size=16, epochs=2
)
FAST = {"device": "cpu", "threads": 2}
SELF_LABEL = workflow_settings("self_label", batch_size=16)


def simclr(images, mask, *, seed, **changes):
    return train_simclr(images, mask, replace(SIMCLR, **changes), seed=seed, **FAST)


def label(encoder, images, mask, sc, *, seed, **changes):
    """self_label with the workflow's settings and ``changes``, on 32-px images."""
    settings = replace(SELF_LABEL, **changes)
    return self_label(
        encoder, images, mask, sc, settings, image_size=32, seed=seed, channels_last=True, **FAST
    )


def make_stack(n=40, shape=(20, 24), k=4, seed=0):
    """n ion images from k smooth random patterns, with abundance and noise; mask on."""
    rng = np.random.default_rng(seed)
    patterns = []
    for _ in range(k):
        p = gaussian_filter(rng.random(shape), 2.5)
        patterns.append((p - p.min()) / (p.max() - p.min()))
    truth = np.arange(n) % k
    images = np.stack([patterns[c] ** 2 * rng.uniform(0.5, 2) for c in truth])
    images += 0.05 * rng.random(images.shape)
    mask = np.ones(shape, dtype=bool)
    mask[:3, :5] = False
    images[:, ~mask] = 0
    return images.astype(np.float32), mask, truth


@pytest.fixture(scope="module")
def stack():
    return make_stack()


@pytest.fixture(scope="module")
def trained(stack):
    images, mask, _ = stack
    return simclr(images, mask, seed=1)


def test_train_simclr_is_reproducible(stack, trained):
    images, mask, _ = stack
    enc, records = trained
    again, records2 = simclr(images, mask, seed=1)
    other, _ = simclr(images, mask, seed=2, epochs=1)
    assert [r["loss"] for r in records] == [r["loss"] for r in records2]
    for (k, a), b in zip(enc.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert not torch.equal(
        enc.state_dict()["conv_stem.weight"], other.state_dict()["conv_stem.weight"]
    )
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[0]["lr"] == pytest.approx(1e-3) and records[1]["lr"] < 1e-3
    assert all(np.isfinite(r["loss"]) and r["seconds"] > 0 for r in records)


def test_embed(stack, trained):
    images, mask, _ = stack
    enc, _ = trained
    a = embed(enc, images, mask, image_size=32, device="cpu", threads=2)
    b = embed(enc, images, mask, image_size=32, batch_size=7, device="cpu", threads=2)
    assert a.shape == (40, 1024) and a.dtype == np.float32
    assert np.array_equal(a, embed(enc, images, mask, image_size=32, device="cpu", threads=2))
    assert np.allclose(a, b, atol=1e-4)  # batching changes rounding only


def test_self_label_is_reproducible(stack, trained):
    images, mask, truth = stack
    enc, _ = trained
    kw = {"init_epochs": 5, "epochs": 2, "seed": 3}
    runs = []
    for _ in range(2):
        runs.append(label(_copy(enc), images, mask, truth, **kw))
    (l1, c1, r1, m1), (l2, c2, r2, m2) = runs
    assert np.array_equal(l1, l2) and np.array_equal(c1, c2) and r1 == r2
    assert l1.shape == (40,) and l1.dtype == np.int64 and c1.dtype == np.float32
    assert np.all((c1 >= 1 / 4 - 1e-6) & (c1 <= 1))
    assert [r["epoch"] for r in r1] == [1, 2]
    assert all(0 < r["confident_share"] <= 1 for r in r1)
    assert torch.equal(m1.head.weight, m2.head.weight)


def test_self_label_keeps_good_labels_with_threshold(stack, trained):
    images, mask, truth = stack
    labels, _, records, _ = label(
        _copy(trained[0]),
        images,
        mask,
        truth,
        init_epochs=200,
        init_lr=1e-2,
        epochs=1,
        confidence=0.0,
        confidence_mode="threshold",
        reassign_confidence=0.0,
        seed=0,
    )
    # a linear classifier on frozen features can fit 40 images: the labels survive
    assert np.mean(labels == truth) > 0.9
    assert records[0]["confident_share"] == 1.0
    with pytest.raises(ValueError, match="confidence_mode"):
        label(trained[0], images, mask, truth, confidence_mode="both", seed=0)


def test_reassign_confidence_keeps_unsure_images_in_their_spectral_cluster(stack, trained):
    images, mask, truth = stack
    noisy = truth.copy()
    noisy[::5] = (noisy[::5] + 1) % 4  # wrong spectral labels for the classifier to move
    kw = {"init_epochs": 30, "epochs": 2, "seed": 1}
    free, conf, _, _ = label(_copy(trained[0]), images, mask, noisy, reassign_confidence=0, **kw)
    moved = np.flatnonzero(free != noisy)
    assert len(moved) >= 2
    gate = float(np.median(conf[moved]))
    gated, gated_conf, _, _ = label(
        _copy(trained[0]), images, mask, noisy, reassign_confidence=gate, **kw
    )
    expected = np.where((free != noisy) & (conf < gate), noisy, free)
    assert np.array_equal(gated, expected)
    assert 0 < np.sum(gated != noisy) < len(moved)  # some moves kept, some undone
    assert np.all(gated_conf[gated != noisy] >= gate)


def _copy(enc):
    import copy

    return copy.deepcopy(enc)


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(InputError, match="CUDA was requested"):
        resolve_device("cuda")
    with pytest.raises(InputError, match="auto, cpu or cuda"):
        resolve_device("tpu")


def test_check_images(caplog):
    images, _, _ = make_stack(n=6)
    with pytest.raises(InputError, match="need at least 2"):
        check_images(images[:1], "x.h5")
    with pytest.raises(InputError, match="only 6 ion images for n_clusters=8"):
        check_images(images, "x.h5", n_clusters=8)
    with caplog.at_level(logging.INFO):  # a batch larger than the data set is clipped
        check_images(images, "x.h5", batch_size=16, batch_key="simclr.batch_size")
    assert "simclr.batch_size=16 clipped to the 6 ion images" in caplog.text
    with pytest.raises(InputError, match="2 x 30 pixels"):
        check_images(np.ones((6, 2, 30)), "x.h5")
    with pytest.raises(InputError, match="all 6 ion images are constant"):
        check_images(np.zeros_like(images), "x.h5")
    images[2] = 0
    with caplog.at_level(logging.WARNING):
        check_images(images, "x.h5")
    assert "1 of 6 ion images are constant" in caplog.text


def test_bad_pretrained_path_is_input_error(stack, tmp_path):
    images, mask, _ = stack
    with pytest.raises(InputError, match="not found"):
        simclr(images, mask, seed=0, epochs=1, pretrained=str(tmp_path / "no.pt"))


# --- step scripts ------------------------------------------------------------------------------


def load_step(name):
    spec = importlib.util.spec_from_file_location(f"step_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_h5(path, images, mask):
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("mz", data=np.linspace(150.0, 900.0, len(images)) + 1e-4)
        f.create_dataset("mask", data=mask)
        f.attrs["tolerance_ppm"] = 10.0


def train_step(tmp_path, h5, **changes):
    """Run the train_simclr step on ``h5`` with a tiny encoder, writing into ``tmp_path``."""
    load_step("train_simclr").main(
        images=h5,
        model=tmp_path / "simclr.pt",
        history=tmp_path / "simclr.tsv",
        settings=replace(SIMCLR, **changes),
        device="cpu",
        threads=2,
        seed=0,
    )


def test_step_scripts_end_to_end(tmp_path, stack):
    images, mask, _ = stack
    h5 = tmp_path / "ion_images.h5"
    write_h5(h5, images, mask)
    common = {"device": "cpu", "threads": 2, "seed": 0}
    train_step(tmp_path, h5, batch_size=16, epochs=2)
    hist = pd.read_csv(tmp_path / "simclr.tsv", sep="\t")
    assert list(hist.columns) == ["epoch", "loss", "lr", "seconds"] and len(hist) == 2
    run = {"inference_batch": 256, "device": "cpu", "threads": 2}
    load_step("embed").main(
        images=h5, model=tmp_path / "simclr.pt", embeddings=tmp_path / "emb.h5", **run
    )
    load_step("embed_compare").main(
        images=h5,
        model=tmp_path / "simclr.pt",
        embeddings=tmp_path / "emb_compare.h5",
        compare=workflow_settings(
            "compare",
            autoencoder={"image_size": 16, "latent_dim": 8, "epochs": 1, "batch_size": 8},
            imagenet={"weights": None},
        ),
        seed=0,
        **run,
    )
    with h5py.File(tmp_path / "emb.h5") as f, h5py.File(tmp_path / "emb_compare.h5") as g:
        assert sorted(f) == ["features", "mz"]
        feats, untrained = f["features"][()], g["features_untrained"][()]
        assert feats.shape == untrained.shape == (40, 1024)
        assert g["features_autoencoder"].shape == (40, 8)
        assert "features_imagenet" not in g  # weights: null leaves that comparison out
        assert not np.allclose(feats, untrained)
        assert np.array_equal(f["mz"][()], read_ion_images(h5)[1])
        assert np.array_equal(g["mz"][()], f["mz"][()])
    step = load_step("cluster")
    step.main(
        embeddings=tmp_path / "emb.h5",
        clusters=tmp_path / "sc.tsv",
        settings=workflow_settings("cluster", n_clusters=4, n_neighbors=5),
        seed=0,
    )
    sc = pd.read_csv(tmp_path / "sc.tsv", sep="\t")
    assert list(sc.columns) == ["mz", "cluster"] and sc["cluster"].nunique() == 4
    outputs = []
    for run in range(2):
        out = {
            "clusters": tmp_path / f"cl{run}.tsv",
            "history": tmp_path / f"h{run}.tsv",
            "finetuned_model": tmp_path / f"sl{run}.pt",
        }
        load_step("self_label").main(
            images=h5,
            model=tmp_path / "simclr.pt",
            sc_clusters=tmp_path / "sc.tsv",
            settings=replace(SELF_LABEL, init_epochs=5, epochs=1),
            channels_last=True,
            **out,
            **common,
        )
        outputs.append(out)
    text = outputs[0]["clusters"].read_text()
    assert text == outputs[1]["clusters"].read_text()  # byte-reproducible
    assert outputs[0]["history"].read_text() == outputs[1]["history"].read_text()
    table = pd.read_csv(outputs[0]["clusters"], sep="\t")
    assert list(table.columns) == ["mz", "cluster", "confidence", "sc_cluster"]
    assert table["mz"].is_monotonic_increasing and len(table) == 40
    assert np.array_equal(table["sc_cluster"], sc["cluster"])
    ckpt = torch.load(outputs[0]["finetuned_model"], weights_only=True)
    assert ckpt["n_clusters"] == 4 and ckpt["head"]["weight"].shape == (4, 1024)
    cluster = workflow_settings("cluster", n_clusters=4, n_neighbors=5, assign_labels="kmeans")
    names = tmp_path / "names.tsv"
    write_names(names, read_ion_images(h5)[1], ["ion A"] + [""] * 39)
    for method in ("pearson_smooth", "simclr_selflabel"):
        answer = tmp_path / f"answer_{method}.tsv"
        load_step("answer").main(
            images=h5,
            selflabel_clusters=outputs[0]["clusters"],
            names=names,
            clusters=answer,
            settings=workflow_settings("answer", method=method),
            smooth_sigma=1.0,
            cluster=cluster,
            seed=0,
        )
        got = pd.read_csv(answer, sep="\t", keep_default_na=False)
        assert list(got.columns) == ["mz", "cluster", "confidence", "learned_cluster", "name"]
        assert got["name"].tolist() == ["ion A"] + [""] * 39
        assert np.array_equal(got["learned_cluster"], table["cluster"])
        assert got["confidence"].between(0, 1).all() and got["cluster"].nunique() == 4
    # the learned answer is the self-labeling result as it is
    assert np.array_equal(got["cluster"], table["cluster"])


def test_every_checkpoint_loads_back_and_gives_the_same_network(tmp_path, stack):
    """simclr.pt and self_label.pt rebuild the networks that wrote them (coordinate channels
    included): the same features as embed wrote, the classifier's probabilities as written."""
    images, mask, _ = stack
    h5 = tmp_path / "ion_images.h5"
    write_h5(h5, images, mask)
    common = {"device": "cpu", "threads": 2, "seed": 0}
    train_step(tmp_path, h5, coord_channels=True, batch_size=16, epochs=1)
    labels = np.arange(40) % 4
    (tmp_path / "sc.tsv").write_text(
        "mz\tcluster\n"
        + "".join(f"{m:.6f}\t{c}\n" for m, c in zip(read_ion_images(h5)[1], labels, strict=True))
    )
    load_step("self_label").main(
        images=h5,
        model=tmp_path / "simclr.pt",
        sc_clusters=tmp_path / "sc.tsv",
        clusters=tmp_path / "sl.tsv",
        history=tmp_path / "slh.tsv",
        finetuned_model=tmp_path / "sl.pt",
        settings=replace(SELF_LABEL, init_epochs=2, epochs=1),
        channels_last=True,
        **common,
    )
    stack_, _, mask_ = read_ion_images(h5)
    for name in ("simclr.pt", "sl.pt"):
        encoder, meta = load_encoder(tmp_path / name)
        assert meta["coord_channels"] is True and meta["image_size"] == 32
    encoder, _ = load_encoder(tmp_path / "sl.pt")
    feats = torch.from_numpy(embed(encoder, stack_, mask_, image_size=32, device="cpu"))
    head = torch.load(tmp_path / "sl.pt", weights_only=True)["head"]
    probs = torch.softmax(feats @ head["weight"].T + head["bias"], dim=1).numpy()
    table = pd.read_csv(tmp_path / "sl.tsv", sep="\t")
    np.testing.assert_allclose(
        probs[np.arange(40), table["cluster"]], table["confidence"], atol=2e-4
    )


def test_small_data_sets_clip_the_batch(tmp_path, stack):
    """Fewer ion images than simclr.batch_size (64 by default): run with all of them."""
    images, mask, _ = stack
    h5 = tmp_path / "ion_images.h5"
    write_h5(h5, images[:12], mask)
    train_step(tmp_path, h5, batch_size=64, epochs=1)
    assert len(pd.read_csv(tmp_path / "simclr.tsv", sep="\t")) == 1


def test_self_label_rejects_stale_clusters(tmp_path, stack):
    images, mask, _ = stack
    h5 = tmp_path / "ion_images.h5"
    write_h5(h5, images, mask)
    stale = tmp_path / "sc.tsv"
    stale.write_text("mz\tcluster\n100.0\t0\n200.0\t1\n")
    with pytest.raises(InputError, match="not those of the 40 ion images"):
        load_step("self_label").main(
            images=h5,
            model=tmp_path / "none.pt",
            sc_clusters=stale,
            clusters=tmp_path / "c.tsv",
            history=tmp_path / "h.tsv",
            finetuned_model=tmp_path / "m.pt",
            settings=SELF_LABEL,
            channels_last=True,
            seed=0,
            device="cpu",
        )


def test_cluster_cli_reports_bad_input_in_one_line(tmp_path):
    emb = tmp_path / "emb.h5"
    with h5py.File(emb, "w") as f:
        f.create_dataset("features", data=np.random.default_rng(0).random((5, 8)))
        f.create_dataset("mz", data=np.arange(5.0))
    out = tmp_path / "sc.tsv"
    res = run_script(
        "cluster.py", "--embeddings", emb, "--clusters", out, "--cluster.n_clusters", "6"
    )
    assert res.returncode == 1 and not out.exists()
    assert "only 5 ion images for n_clusters=6" in res.stderr
    assert "Traceback" not in res.stderr
