"""Image preparation and batched, reproducible augmentations for ion images.

Everything works on whole batches of shape ``(n, 1, S, S)`` with tensor operations, so the same
code runs on CPU and CUDA and the randomness comes from one :class:`torch.Generator`. Following
the reference method (Hu, Bindu & Laskin 2022), the augmentations change appearance (blur,
intensity, noise) rather than geometry: crops and translations hurt co-localization, because
*where* an ion is, is the signal. MSI-specific appearance changes (contrast curves, admixture of
another ion, on-tissue background, counting noise, hotspots) model what differs between real ion
images of co-localized molecules; each is off unless its strength is set.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from msicoloc.settings import AugmentParams


def fit_square(images: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """Scale each image to [0, 1] and fit it into a ``size`` x ``size`` square.

    The aspect ratio is kept: the longer side is resized to ``size`` and the shorter one is
    padded with zeros on both sides, because stretching would distort the shapes that the
    encoder compares.

    Parameters
    ----------
    images
        Non-negative images, shape ``(n, H, W)``.
    size
        Side of the output square in pixels.

    Returns
    -------
    torch.Tensor
        float32, shape ``(n, 1, size, size)``, on the input's device (CPU for numpy input).
        Each image is divided by its maximum; constant (e.g. all-zero) images become 0.
    """
    x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
    if x.ndim != 3:
        raise ValueError(f"images must have shape (n, H, W), got {tuple(x.shape)}")
    x = x.to(torch.float32).unsqueeze(1)
    peak = x.amax(dim=(2, 3), keepdim=True)
    floor = x.amin(dim=(2, 3), keepdim=True)
    # Constant images carry no spatial information: they become 0 rather than 1 (or NaN).
    x = torch.where(peak > floor, x / peak.clamp_min(torch.finfo(torch.float32).tiny), 0.0)
    return _resize_pad(x, size).clamp_(0.0, 1.0)


def fit_mask(
    mask: np.ndarray | torch.Tensor | None, shape: tuple[int, int], size: int
) -> torch.Tensor:
    """Fit a tissue mask into the square exactly as :func:`fit_square` fits the images.

    Parameters
    ----------
    mask
        Boolean ``(H, W)``, True on tissue; None means all tissue.
    shape
        ``(H, W)`` of the images, used when ``mask`` is None.
    size
        Side of the output square in pixels.

    Returns
    -------
    torch.Tensor
        bool, shape ``(1, 1, size, size)``; the padding is off-tissue.
    """
    if mask is None:
        m = torch.ones(shape, dtype=torch.float32)
    else:
        m = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask)
        if tuple(m.shape) != tuple(shape):
            raise ValueError(f"mask shape {tuple(m.shape)} does not match images {tuple(shape)}")
        m = m.to(torch.float32)
    return _resize_pad(m[None, None], size) > 0.5


def _resize_pad(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    scale = size / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    if (new_h, new_w) != (h, w):
        # Antialiasing matters when large images shrink: plain bilinear would alias hot spots.
        x = F.interpolate(
            x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=scale < 1
        )
    top, left = (size - new_h) // 2, (size - new_w) // 2
    return F.pad(x, (left, size - new_w - left, top, size - new_h - top), value=0.0)


def augment(
    x: torch.Tensor,
    mask: torch.Tensor | None,
    params: AugmentParams,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return a randomly augmented copy of a batch of images.

    Parameters
    ----------
    x
        Images on a [0, 1] scale, shape ``(n, 1, S, S)``.
    mask
        Tissue mask broadcastable to ``x`` (e.g. ``(1, 1, S, S)``, bool), or None for no mask.
    params
        Augmentation strengths.
    generator
        Source of randomness, on ``x``'s device; the same seed gives the same batch.

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as ``x``, values in [0, 1], 0 off-tissue (if enabled).
    """
    n = x.shape[0]
    out = x
    m = None if mask is None else mask.to(device=x.device, dtype=x.dtype).expand_as(x)
    if params.rotation > 0:
        out, m = _rotate(out, m, params.rotation, generator)
    out = _msi_nuisances(out, m, params, generator)
    if params.blur_kernel > 1 and params.blur_sigma[1] > 0:
        out = _gaussian_blur(
            out, params.blur_kernel, _uniform(n, params.blur_sigma, out, generator)
        )
    out = _jitter(out, m, params.brightness, params.contrast, generator)
    out = _add_noise(out, params, generator)
    out = out.clamp(0.0, 1.0)
    if m is not None and params.zero_off_tissue:
        out = out * (m > 0.5)
    return out


def _msi_nuisances(
    x: torch.Tensor, m: torch.Tensor | None, params: AugmentParams, generator
) -> torch.Tensor:
    """What differs between two real ion images of co-localized molecules (see AugmentParams)."""
    n = x.shape[0]
    shape = (n, 1, 1, 1)
    if params.gamma > 0:
        g = torch.exp(_uniform(n, (-params.gamma, params.gamma), x, generator))
        x = x.clamp_min(0.0) ** g.view(shape)
    if params.admixture > 0 and n > 1:
        # another image of the batch: a random derangement (shift by 1..n-1)
        shift = int(torch.randint(1, n, (1,), generator=generator, device=x.device))
        a = _uniform(n, (0.0, params.admixture), x, generator).view(shape)
        x = (1 - a) * x + a * torch.roll(x, shift, dims=0)
    if params.background > 0:
        b = _uniform(n, (0.0, params.background), x, generator).view(shape)
        on = torch.ones_like(x) if m is None else m
        x = (x + b * on) / (1 + b)
    if params.counts[1] > 0:
        lo, hi = math.log(params.counts[0]), math.log(params.counts[1])
        c = torch.exp(_uniform(n, (lo, hi), x, generator)).view(shape)
        peak = x.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
        counts = torch.poisson(x.clamp_min(0.0) / peak * c, generator=generator)
        x = counts / c * peak
    if params.hotspots > 0:
        share = _uniform(n, (0.0, params.hotspots), x, generator).view(shape)
        hot = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) < share
        x = torch.where(hot, x.amax(dim=(1, 2, 3), keepdim=True), x)
    return x


def _uniform(
    n: int, bounds: tuple[float, float], like: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    lo, hi = bounds
    u = torch.rand(n, generator=generator, device=like.device, dtype=like.dtype)
    return lo + (hi - lo) * u


def _gaussian_blur(x: torch.Tensor, kernel: int, sigma: torch.Tensor) -> torch.Tensor:
    """Separable blur with one sigma per image, as one grouped convolution per axis."""
    n, c, h, w = x.shape
    offsets = torch.arange(kernel, device=x.device, dtype=x.dtype) - (kernel - 1) / 2
    k = torch.exp(-0.5 * (offsets[None, :] / sigma.clamp_min(1e-6)[:, None]) ** 2)
    k = (k / k.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)
    half = kernel // 2
    # Reflect padding cannot exceed the image; small images fall back to replicate.
    mode = "reflect" if half < min(h, w) else "replicate"
    y = x.reshape(1, n * c, h, w)
    y = F.conv2d(F.pad(y, (half, half, 0, 0), mode=mode), k[:, None, None, :], groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, half, half), mode=mode), k[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


def _jitter(
    x: torch.Tensor,
    m: torch.Tensor | None,
    brightness: float,
    contrast: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    n = x.shape[0]
    if brightness > 0:
        b = _uniform(n, (1 - brightness, 1 + brightness), x, generator)
        x = (x * b[:, None, None, None]).clamp(0.0, 1.0)
    if contrast > 0:
        c = _uniform(n, (1 - contrast, 1 + contrast), x, generator)[:, None, None, None]
        # Contrast pivots on the tissue mean: the background would drag a global mean to ~0.
        if m is None:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
        else:
            mean = (x * m).sum(dim=(1, 2, 3), keepdim=True) / m.sum(
                dim=(1, 2, 3), keepdim=True
            ).clamp_min(1.0)
        x = ((x - mean) * c + mean).clamp(0.0, 1.0)
    return x


def _add_noise(
    x: torch.Tensor, params: AugmentParams, generator: torch.Generator | None
) -> torch.Tensor:
    if params.noise_sigma[1] <= 0:
        return x
    n = x.shape[0]
    signal = x > params.noise_threshold
    level = (x * signal).sum(dim=(1, 2, 3)) / signal.sum(dim=(1, 2, 3)).clamp_min(1)
    sigma = _uniform(n, params.noise_sigma, x, generator) * level / params.noise_reference
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + noise * sigma[:, None, None, None]


def _rotate(
    x: torch.Tensor, m: torch.Tensor | None, degrees: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    n = x.shape[0]
    angle = _uniform(n, (-degrees, degrees), x, generator) * (math.pi / 180)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Image and mask move together so that off-tissue zeroing still lines up.
    stacked = x if m is None else torch.cat([x, m], dim=1)
    rotated = F.grid_sample(
        stacked, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    c = x.shape[1]
    return rotated[:, :c], (None if m is None else rotated[:, c:])
