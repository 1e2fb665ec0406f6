"""Encoders, weight loading and the NT-Xent loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch
from conftest import workflow_settings

from msicoloc import InputError
from msicoloc.models import (
    ClusterClassifier,
    ProjectionHead,
    build_encoder,
    feature_dim,
    input_channels,
    nt_xent_loss,
    prepare_input,
)

TINY = "mobilenetv3_small_050"


def nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    """SimCLR's loss written out term by term from the paper's definition."""
    z = [v / v.norm() for v in list(z1) + list(z2)]
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        denom = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[pos]) / t) / denom)
    return total / (2 * n)


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("n", [2, 5, 16])
def test_nt_xent_matches_reference(n, t):
    g = torch.Generator().manual_seed(n * 100 + int(10 * t))
    z1 = torch.randn(n, 7, generator=g, dtype=torch.float64)
    z2 = torch.randn(n, 7, generator=g, dtype=torch.float64)
    got = float(nt_xent_loss(z1, z2, t))
    assert got == pytest.approx(nt_xent_reference(z1, z2, t), rel=1e-9)


def test_nt_xent_rewards_agreeing_views():
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(8, 16, generator=g)
    same = nt_xent_loss(z1, z1 + 0.01 * torch.randn(8, 16, generator=g), 0.5)
    other = nt_xent_loss(z1, torch.randn(8, 16, generator=g), 0.5)
    assert same < other
    # scale-invariant: only directions count
    assert nt_xent_loss(z1, 3 * z1, 0.5) == pytest.approx(float(nt_xent_loss(z1, z1, 0.5)))


@pytest.mark.parametrize(
    ("name", "width"),
    [("resnet18", 512), ("mobilenetv3_small_100", 1024), ("efficientnet_b0", 1280)],
)
def test_feature_width(name, width):
    enc = build_encoder(name, in_chans=1).eval()
    assert feature_dim(enc) == width
    assert input_channels(enc) == 1
    with torch.no_grad():
        out = enc(prepare_input(torch.rand(2, 1, 32, 32), 1))
    assert out.shape == (2, width)


def test_three_channel_input_is_gray_copied():
    enc = build_encoder(TINY, in_chans=3).eval()
    x = prepare_input(torch.rand(2, 1, 32, 32), 3)
    assert x.shape == (2, 3, 32, 32) and torch.equal(x[:, 0], x[:, 2])
    with torch.no_grad():
        assert enc(x).shape == (2, feature_dim(enc))


def _perturbed(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(123)
    return build_encoder(name, **kw)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_pretrained_path_loads_weights(tmp_path, suffix):
    torch.manual_seed(0)
    source = timm.create_model(TINY, num_classes=10, in_chans=1)  # with a classifier
    path = tmp_path / f"w{suffix}"
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    if suffix == ".pt":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file(state, str(path))
    fresh = _perturbed(TINY)
    key = "conv_stem.weight"
    assert not torch.equal(fresh.state_dict()[key], state[key])
    loaded = build_encoder(TINY, pretrained=str(path))
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_pretrained_wrapped_checkpoint(tmp_path):
    source = build_encoder(TINY)
    path = tmp_path / "ckpt.pt"
    torch.save({"encoder": source.state_dict(), "image_size": 64}, path)
    loaded = build_encoder(TINY, pretrained=path)
    assert torch.equal(
        loaded.state_dict()["conv_stem.weight"], source.state_dict()["conv_stem.weight"]
    )


def test_rgb_weights_are_summed_into_gray(tmp_path):
    torch.manual_seed(0)
    rgb = timm.create_model(TINY, num_classes=0, in_chans=3)
    path = tmp_path / "rgb.pth"
    torch.save(rgb.state_dict(), path)
    gray = build_encoder(TINY, in_chans=1, pretrained=path)
    want = rgb.state_dict()["conv_stem.weight"].sum(dim=1, keepdim=True)
    assert torch.equal(gray.state_dict()["conv_stem.weight"], want)


def test_wrong_architecture_raises(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save(timm.create_model("resnet18", num_classes=0).state_dict(), path)
    with pytest.raises(InputError, match="does not fit encoder") as err:
        build_encoder(TINY, pretrained=path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_wrong_width_raises(tmp_path):
    path = tmp_path / "wide.pt"
    torch.save(timm.create_model("mobilenetv3_small_100", num_classes=0).state_dict(), path)
    with pytest.raises(InputError, match="wrong shape"):
        build_encoder(TINY, pretrained=path)


def test_missing_or_garbage_file_raises(tmp_path):
    with pytest.raises(InputError, match="not found"):
        build_encoder(TINY, pretrained=tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(InputError, match="cannot read"):
        build_encoder(TINY, pretrained=bad)


def test_hub_failure_is_an_error_not_random_weights(monkeypatch):
    real = timm.create_model

    def offline(name, pretrained=False, **kw):
        if pretrained:
            raise OSError("no internet")
        return real(name, pretrained=False, **kw)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(InputError, match="could not fetch"):
        build_encoder(TINY, pretrained=True)
    with pytest.raises(InputError, match="could not fetch"):
        build_encoder(TINY, pretrained="true")
    assert feature_dim(build_encoder(TINY, pretrained="false")) == 1024


def test_unknown_model_name():
    with pytest.raises(InputError, match="not a timm model"):
        build_encoder("no_such_net")


def test_heads():
    head = ProjectionHead(32, 16)
    assert head(torch.rand(4, 32)).shape == (4, 16)
    assert ProjectionHead(32)(torch.rand(4, 32)).shape == (4, 128)
    net = ClusterClassifier(build_encoder(TINY), 5).eval()
    with torch.no_grad():
        assert net(torch.rand(3, 1, 32, 32)).shape == (3, 5)


def test_pretrained_path_with_other_key_names_loads_by_position(tmp_path):
    """Weights of another implementation of the same network (other names, same order and
    shapes, plus a classifier) load; a file that does not line up is refused."""
    torch.manual_seed(1)
    source = timm.create_model("resnet18", num_classes=10, in_chans=1)
    renamed = {
        f"port.{i}.{k.replace('.', '_')}": v for i, (k, v) in enumerate(source.state_dict().items())
    }
    path = tmp_path / "port.pth"
    torch.save(renamed, path)
    enc = build_encoder("resnet18", in_chans=1, pretrained=str(path))
    assert torch.equal(enc.state_dict()["conv1.weight"], source.state_dict()["conv1.weight"])
    shuffled = dict(reversed(list(renamed.items())))
    torch.save(shuffled, path)
    with pytest.raises(InputError, match="does not fit encoder"):
        build_encoder("resnet18", in_chans=1, pretrained=str(path))


def test_coord_channels_make_the_encoder_see_position():
    torch.manual_seed(0)
    enc = build_encoder("resnet18", in_chans=1, coord_channels=True)
    plain = build_encoder("resnet18", in_chans=1)
    assert input_channels(enc) == 1 and feature_dim(enc) == feature_dim(plain) == 512
    first = next(m for m in enc.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 3 and first.weight[:, 1:].std() > 0
    enc.eval()
    x = torch.zeros(2, 1, 32, 32)
    x[0, 0, 4:8, 4:8] = 1.0  # the same blob, top left ...
    x[1, 0, 24:28, 24:28] = 1.0  # ... and bottom right
    with torch.no_grad():
        f = enc(x)
    assert f.shape == (2, 512)
    assert not torch.allclose(f[0], f[1], atol=1e-4)


# --- the deep baselines: convolutional autoencoder, ImageNet features ------------------------

from msicoloc.models import ConvAutoencoder, installed_imagenet_weights  # noqa: E402
from msicoloc.train import imagenet_features, train_autoencoder  # noqa: E402


def test_autoencoder_shapes_and_size_check():
    model = ConvAutoencoder(32, 16)
    x = torch.rand(3, 1, 32, 32)
    assert model(x).shape == x.shape and model.encode(x).shape == (3, 16)
    with pytest.raises(ValueError, match="multiple of 8"):
        ConvAutoencoder(30, 16)


def test_autoencoder_learns_and_is_seeded():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:20, 0:20]
    a, b = np.exp(-((yy - 5) ** 2 + (xx - 5) ** 2) / 10), np.exp(-((xx - 15) ** 2) / 10)
    stack = np.stack([p + rng.random((20, 20)) * 0.05 for p in (a, b) for _ in range(8)])
    settings = workflow_settings(
        "compare", autoencoder=dict(image_size=16, latent_dim=8, epochs=40, batch_size=8, lr=3e-3)
    ).autoencoder
    f1 = train_autoencoder(stack, None, settings, seed=0, threads=1, device="cpu")
    f2 = train_autoencoder(stack, None, settings, seed=0, threads=1, device="cpu")
    assert f1.shape == (16, 8) and np.array_equal(f1, f2)
    f = f1 / np.linalg.norm(f1, axis=1, keepdims=True)
    sim = f @ f.T
    within = (sim[:8, :8].mean() + sim[8:, 8:].mean()) / 2
    assert within > sim[:8, 8:].mean()  # images of one pattern sit together


def test_imagenet_features_load_a_weights_file(tmp_path):
    # a state dict of the same network (here random, saved like a downloaded file)
    torch.manual_seed(0)
    path = tmp_path / "lite0.pt"
    torch.save(build_encoder("efficientnet_lite0", in_chans=3).state_dict(), path)
    stack = np.random.default_rng(0).random((4, 12, 12)).astype(np.float32)
    feats = imagenet_features(
        stack, None, encoder_name="efficientnet_lite0", weights=str(path), image_size=32
    )
    again = imagenet_features(
        stack, None, encoder_name="efficientnet_lite0", weights=str(path), image_size=32
    )
    assert feats.shape == (4, 1280) and np.array_equal(feats, again)


@pytest.mark.skipif(installed_imagenet_weights() is None, reason="no offline ImageNet weights")
def test_installed_imagenet_weights_fit_timm_efficientnet_lite0():
    encoder = build_encoder(
        "efficientnet_lite0", in_chans=3, pretrained=installed_imagenet_weights()
    )
    # ImageNet batch-norm statistics, not the fresh ones (mean 0, var 1)
    assert not torch.allclose(encoder.bn1.running_var, torch.ones_like(encoder.bn1.running_var))
