"""Fitting images into squares and the batched augmentations."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import workflow_settings

from msicoloc.augment import augment, fit_mask, fit_square

# The workflow's augmentations (config/config.yaml): SimCLR's views, self-labeling's weak and
# strong views.
SIMCLR = workflow_settings("simclr").augment
WEAK = workflow_settings("self_label").weak
STRONG = workflow_settings("self_label").strong
PRESETS = {"simclr": SIMCLR, "weak": WEAK, "strong": STRONG}


def params(**changes):
    """SimCLR's augmentations with ``changes``."""
    return dataclasses.replace(SIMCLR, **changes)


def test_fit_square_keeps_aspect_and_pads():
    wide = np.ones((2, 10, 20), dtype=np.float32) * np.array([1.0, 5.0])[:, None, None]
    wide[:, 5, 0] = 0.5  # not constant (constant images carry nothing and become 0)
    out = fit_square(wide, 32)
    assert out.shape == (2, 1, 32, 32) and out.dtype == torch.float32
    # 10x20 -> 16x32 content, 8 rows of zero padding above and below; each image max-scaled
    rows = out[:, 0].amax(dim=2)
    assert torch.all(rows[:, 8:24] == 1) and torch.all(rows[:, :8] == 0)
    assert torch.all(rows[:, 24:] == 0)
    tall = np.ones((1, 30, 15))
    tall[0, 0, 7] = 0
    tall = fit_square(tall, 20)
    cols = tall[0, 0].amax(dim=0)
    assert torch.all(cols[5:15] == 1) and cols[:5].sum() == 0 and cols[15:].sum() == 0


def test_fit_square_scales_per_image_and_keeps_empty_images_zero():
    rng = np.random.default_rng(0)
    imgs = (rng.random((3, 12, 12)) * np.array([1, 100, 0])[:, None, None]).astype(np.float32)
    imgs[1, 3, 4] = 1000.0
    out = fit_square(imgs, 12)  # no resize: exact scaling
    assert torch.allclose(out[1, 0], torch.from_numpy(imgs[1] / np.float32(1000.0)))
    assert out[0].max() == 1 and torch.all(out[2] == 0)
    assert torch.all(fit_square(np.full((1, 5, 5), 7.0), 8) == 0)  # constant: no information
    assert torch.isfinite(out).all() and out.min() >= 0


def test_fit_mask_matches_images():
    mask = np.zeros((10, 20), dtype=bool)
    mask[:, :10] = True
    m = fit_mask(mask, (10, 20), 32)
    assert m.shape == (1, 1, 32, 32) and m.dtype == torch.bool
    img = fit_square(mask[None].astype(np.float32), 32)
    assert torch.equal(m, img > 0.5)
    assert fit_mask(None, (10, 20), 32)[0, 0].amax(dim=1).tolist() == rows_of(16, 32)
    with pytest.raises(ValueError, match="does not match"):
        fit_mask(mask, (20, 10), 32)


def rows_of(content: int, size: int) -> list[bool]:
    pad = (size - content) // 2
    return [pad <= i < pad + content for i in range(size)]


def _batch(n=6, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size, size, generator=g) ** 3
    mask = torch.ones(1, 1, size, size, dtype=torch.bool)
    mask[..., :5, :] = False
    return x * mask, mask


@pytest.mark.parametrize("params", [SIMCLR, WEAK, STRONG], ids=["simclr", "weak", "strong"])
def test_augment_shape_range_and_mask(params):
    x, mask = _batch()
    out = augment(x, mask, params, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert torch.all(out[..., :5, :] == 0)
    assert not torch.equal(out, x)


def test_rotation_turns_image_and_mask_together():
    x, _ = _batch(size=32)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    r = ((yy - 15.5) ** 2 + (xx - 15.5) ** 2).sqrt()
    disk = (r < 12)[None, None]  # rotation-invariant tissue
    out = augment(x * disk, disk, params(rotation=20.0), torch.Generator().manual_seed(1))
    assert out.min() >= 0 and out.max() <= 1
    assert torch.all(out[..., r > 13.5] == 0)
    assert out[..., r < 10].gt(0).float().mean() > 0.5


def test_augment_is_reproducible_and_varies_per_image():
    x, mask = _batch()
    x = x[:1].expand(4, -1, -1, -1).contiguous()  # the same image four times
    a = augment(x, mask, STRONG, torch.Generator().manual_seed(7))
    b = augment(x, mask, STRONG, torch.Generator().manual_seed(7))
    c = augment(x, mask, STRONG, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # each image draws its own strengths


def test_identity_when_all_strengths_are_zero():
    x, mask = _batch()
    off = params(blur_kernel=1, brightness=0, contrast=0, noise_sigma=(0, 0))
    assert torch.equal(augment(x, mask, off, torch.Generator().manual_seed(0)), x)


def test_blur_matches_a_gaussian_kernel():
    x = torch.zeros(1, 1, 21, 21)
    x[0, 0, 10, 10] = 1.0
    p = params(blur_kernel=9, blur_sigma=(1.5, 1.5), brightness=0, contrast=0, noise_sigma=(0, 0))
    out = augment(x, None, p, torch.Generator().manual_seed(0))[0, 0]
    k = np.exp(-0.5 * (np.arange(-4, 5) / 1.5) ** 2)
    k /= k.sum()
    want = np.zeros((21, 21))
    want[6:15, 6:15] = np.outer(k, k)
    assert np.allclose(out.numpy(), want, atol=1e-6)


def test_noise_scales_with_signal_level():
    p = params(blur_kernel=1, brightness=0, contrast=0, noise_sigma=(0.2, 0.2))
    zero = torch.zeros(2, 1, 16, 16)
    assert torch.equal(augment(zero, None, p, torch.Generator().manual_seed(0)), zero)
    faint = torch.full((1, 1, 64, 64), 0.06)
    bright = torch.full((1, 1, 64, 64), 0.6)
    sd_faint = (augment(faint, None, p, torch.Generator().manual_seed(0)) - faint).std()
    sd_bright = (augment(bright, None, p, torch.Generator().manual_seed(0)) - bright).std()
    assert float(sd_bright) == pytest.approx(0.2, rel=0.1)  # level 0.6 = reference level
    assert float(sd_faint) == pytest.approx(0.02, rel=0.1)


def test_presets_follow_the_reference():
    assert PRESETS["simclr"].blur_sigma == (0.01, 0.75) and SIMCLR.brightness == 0.5
    assert WEAK.brightness == 0.25 and WEAK.noise_sigma[1] == 0.2
    assert STRONG.blur_sigma == (0.1, 2.0) and STRONG.noise_sigma[1] == 0.4
    assert all(p.zero_off_tissue and p.rotation == 0 for p in PRESETS.values())
    with pytest.raises(ValueError, match="odd"):
        params(blur_kernel=4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_augment_on_cuda():
    x, mask = _batch()
    out = augment(x.cuda(), mask.cuda(), STRONG, torch.Generator("cuda").manual_seed(0))
    assert out.is_cuda and out.min() >= 0 and out.max() <= 1
    assert torch.all(out[..., :5, :] == 0)


# --- MSI nuisances ----------------------------------------------------------------------------

MSI = params(
    blur_kernel=0,
    brightness=0.0,
    contrast=0.0,
    noise_sigma=(0.0, 0.0),
    gamma=0.7,
    admixture=0.3,
    background=0.5,
    counts=(3.0, 100.0),
    hotspots=0.02,
)


def msi_batch(n=8, side=24):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(n, 1, side, side, generator=g)
    m = torch.ones(1, 1, side, side, dtype=torch.bool)
    m[..., :5] = False
    return x * m, m


def test_msi_nuisances_keep_shape_range_mask_and_are_seeded():
    x, m = msi_batch()
    a = augment(x, m, MSI, torch.Generator().manual_seed(0))
    b = augment(x, m, MSI, torch.Generator().manual_seed(0))
    c = augment(x, m, MSI, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert float(a.min()) >= 0 and float(a.max()) <= 1 and float(a[..., :5].abs().max()) == 0
    assert torch.equal(a, b) and not torch.equal(a, c)


def plain(**kw):
    base = dict(blur_kernel=0, brightness=0.0, contrast=0.0, noise_sigma=(0.0, 0.0))
    return params(**{**base, **kw})


def test_contrast_curve_keeps_the_order_of_pixels():
    x, m = msi_batch()
    y = augment(x, m, plain(gamma=1.0), torch.Generator().manual_seed(0))
    on = m.expand_as(x)
    for i in range(len(x)):
        a, b = x[i][on[i]], y[i][on[i]]
        assert torch.equal(torch.argsort(a, stable=True), torch.argsort(b, stable=True))


def test_admixture_and_background_mix_within_bounds():
    x, m = msi_batch()
    y = augment(x, m, plain(admixture=0.2), torch.Generator().manual_seed(0))
    # every output pixel lies between the image's own value and another image's
    lo, hi = x.amin(dim=0, keepdim=True), x.amax(dim=0, keepdim=True)
    assert torch.all(y >= lo - 1e-6) and torch.all(y <= hi + 1e-6)
    z = augment(torch.zeros_like(x), m, plain(background=0.5), torch.Generator().manual_seed(0))
    on = z[m.expand_as(z)].view(len(x), -1)
    # a constant on-tissue level, the same for every tissue pixel of an image, 0 off tissue
    assert torch.all(on.amax(dim=1) == on.amin(dim=1)) and float(on.max()) <= 0.5 / 1.5 + 1e-6


def test_counting_noise_is_unbiased_and_hotspots_hit_the_maximum():
    x = torch.full((64, 1, 16, 16), 0.5)
    x[:, :, 0, 0] = 1.0  # the image maximum sets the count scale
    y = augment(x, None, plain(counts=(50.0, 50.0)), torch.Generator().manual_seed(0))
    assert abs(float(y[:, :, 1:, 1:].mean()) - 0.5) < 0.01 and float(y.std()) > 0.05
    h = augment(x, None, plain(hotspots=0.5), torch.Generator().manual_seed(0))
    share = float((h[:, :, 1:, 1:] == 1.0).float().mean())
    assert 0.15 < share < 0.35  # a share drawn from U(0, 0.5) per image: 0.25 on average


def test_msi_nuisances_are_off_by_default_and_validated():
    x, m = msi_batch()
    off = plain()
    assert torch.equal(augment(x, m, off, torch.Generator().manual_seed(0)), x)
    with pytest.raises(ValueError):
        params(counts=(0.0, 5.0))
    with pytest.raises(ValueError):
        params(admixture=0.8)
