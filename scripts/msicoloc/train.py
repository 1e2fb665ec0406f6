"""Training loops: SimCLR pre-training, embedding, and self-labeling fine-tuning.

All loops are device-agnostic: the whole (small) image stack lives on the device as one tensor
and augmentations run there. With the same seed and thread count, CPU runs are bit-identical.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from msicoloc import InputError
from msicoloc.augment import SIMCLR, STRONG, WEAK, AugmentParams, augment, fit_mask, fit_square
from msicoloc.images import read_ion_images  # noqa: F401  (re-exported for the steps)
from msicoloc.models import (
    ClusterClassifier,
    ConvAutoencoder,
    CoordEncoder,
    ProjectionHead,
    build_encoder,
    feature_dim,
    input_channels,
    nt_xent_loss,
    prepare_input,
)

log = logging.getLogger(__name__)

EpochLogger = Callable[[dict], None]


# ---------------------------------------------------------------------------------------------
# Input and environment


MIN_SIDE = 3  # pixels; a line scan (one row or column) has no 2-D pattern to learn


def check_images(
    images: np.ndarray,
    path: object,
    n_clusters: int | None = None,
    batch_size: int | None = None,
    batch_key: str = "batch_size",
) -> None:
    """Raise :class:`InputError` if the stack cannot be learned from; warn on constant images.

    Parameters
    ----------
    images
        ``(n, H, W)`` ion images.
    path
        File named in messages.
    n_clusters
        Number of clusters that will be asked for, if any.
    batch_size
        Images per training step, if any: clipped to the number of images (logged).
    batch_key
        The config key of ``batch_size``, named in the message.
    """
    n, h, w = images.shape
    if n < 2:
        raise InputError(path, f"{n} ion image(s): need at least 2 to learn from")
    if n_clusters is not None and n < n_clusters:
        raise InputError(path, f"only {n} ion images for n_clusters={n_clusters}: lower n_clusters")
    if batch_size is not None and n < batch_size:
        # a small data set is no error: every step then sees all of it
        log.info("%s=%d clipped to the %d ion images there are", batch_key, batch_size, n)
    if min(h, w) < MIN_SIDE:
        raise InputError(
            path,
            f"ion images are {h} x {w} pixels: a single row or column has no 2-D pattern "
            f"to learn from (need at least {MIN_SIDE} x {MIN_SIDE})",
        )
    if not np.isfinite(images).all():
        raise InputError(path, "images contain NaN or infinite values")
    flat = images.reshape(n, -1)
    constant = flat.max(axis=1) == flat.min(axis=1)
    if constant.all():
        raise InputError(
            path, f"all {n} ion images are constant (all zero or no signal on the tissue)"
        )
    if constant.any():
        # Still valid ions (e.g. below detection here): kept, they will cluster together.
        log.warning("%d of %d ion images are constant", int(constant.sum()), n)


def resolve_device(device: str = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"`` or ``"cuda"`` (``"cuda:1"``) into a torch device.

    Parameters
    ----------
    device
        ``"auto"`` uses CUDA when torch sees a GPU, else the CPU.
    """
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(
                f"device={device}",
                "CUDA was requested but torch sees no GPU here; use device auto or cpu",
            )
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise InputError(f"device={device}", "device must be auto, cpu or cuda")


@contextlib.contextmanager
def reproducible(seed: int, threads: int | None, device: torch.device) -> Iterator[torch.Generator]:
    """Seed torch, fix the thread count and ask for deterministic kernels, restoring afterwards.

    Yields a generator on ``device`` for augmentations and shuffling.
    """
    if device.type == "cuda":
        # cuBLAS is only deterministic with a fixed workspace; must be set before first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    old_bench = torch.backends.cudnn.benchmark
    try:
        if threads:
            torch.set_num_threads(int(threads))
        # warn_only: a kernel without a deterministic version warns instead of failing a run.
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.manual_seed(seed)
        gen = torch.Generator(device=device)
        gen.manual_seed(seed)
        yield gen
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        torch.backends.cudnn.benchmark = old_bench


def _to_device(
    images: np.ndarray, mask: np.ndarray | None, image_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    x = fit_square(images, image_size)
    m = fit_mask(mask, images.shape[1:], image_size)
    # Images are already 0 off-tissue; this only guards against stray interpolation bleed.
    return (x * m).to(device), m.to(device)


def _batches(n: int, batch_size: int, gen: torch.Generator, device: torch.device):
    """Shuffled index batches of one epoch, dropping the incomplete last one."""
    batch = min(batch_size, n)
    perm = torch.randperm(n, generator=gen, device=device)
    return [perm[i : i + batch] for i in range(0, n - batch + 1, batch)]


def _channels_last(x: torch.Tensor, enabled: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if enabled else x


CHECKPOINT_FORMAT = "msicoloc-encoder/1"


def encoder_checkpoint(
    encoder: nn.Module,
    *,
    encoder_name: str,
    in_chans: int,
    image_size: int,
    pretrained: bool | str,
    seed: int,
    **extra: object,
) -> dict:
    """Everything needed to rebuild ``encoder``: weights plus construction settings.

    Parameters
    ----------
    encoder
        The trained encoder.
    encoder_name, in_chans, pretrained, seed
        The arguments it was built with (``seed`` reproduces the random initialisation).
    image_size
        Side of the square images it was trained on.
    extra
        More entries for the checkpoint (e.g. a classifier head's state dict).
    """
    return {
        "format": CHECKPOINT_FORMAT,
        "encoder": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        # read from the network itself, so that no caller can leave it out
        "coord_channels": isinstance(encoder, CoordEncoder),
        "encoder_name": encoder_name,
        "in_chans": int(in_chans),
        "image_size": int(image_size),
        "feature_dim": feature_dim(encoder),
        "pretrained": pretrained if isinstance(pretrained, bool) else str(pretrained),
        "seed": int(seed),
        **extra,
    }


def load_encoder(path: str | os.PathLike[str], *, initial: bool = False) -> tuple[nn.Module, dict]:
    """Rebuild an encoder from a checkpoint of :func:`encoder_checkpoint`.

    Parameters
    ----------
    path
        Checkpoint file.
    initial
        Return the encoder's starting point instead (the same seed's random weights, or the
        pretrained weights it started from), for before/after comparisons.

    Returns
    -------
    tuple
        The encoder (CPU, eval mode) and the checkpoint without its weights.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(path, f"cannot read checkpoint ({type(err).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, f"not a {CHECKPOINT_FORMAT} checkpoint")
    meta = {k: v for k, v in ckpt.items() if not isinstance(v, dict)}
    # Seeding here reproduces the random initial weights that training started from.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(meta["seed"])
        encoder = build_encoder(
            meta["encoder_name"],
            in_chans=meta["in_chans"],
            pretrained=meta["pretrained"],
            coord_channels=bool(meta.get("coord_channels", False)),
        )
    if not initial:
        encoder.load_state_dict(ckpt["encoder"])
    return encoder.eval(), meta


# ---------------------------------------------------------------------------------------------
# SimCLR


def train_simclr(
    images: np.ndarray,
    mask: np.ndarray | None,
    *,
    encoder_name: str = "mobilenetv3_small_100",
    in_chans: int = 1,
    pretrained: bool | str = False,
    coord_channels: bool = False,
    image_size: int = 64,
    batch_size: int = 64,
    epochs: int = 50,
    lr: float = 1e-3,
    weight_decay: float = 1e-6,
    temperature: float = 0.5,
    projection_dim: int = 128,
    augment_params: AugmentParams = SIMCLR,
    seed: int = 0,
    device: str = "auto",
    threads: int | None = None,
    channels_last: bool = True,
    recalibrate: bool = True,
    log_epoch: EpochLogger | None = None,
) -> tuple[nn.Module, list[dict]]:
    """Train an encoder with SimCLR (NT-Xent on two augmented views of each ion image).

    Parameters
    ----------
    images
        ``(n, H, W)`` non-negative ion images, 0 off-tissue.
    mask
        ``(H, W)`` bool tissue mask, or None.
    encoder_name
        timm model name.
    in_chans
        Encoder input channels (1, or 3 to copy gray to RGB).
    pretrained
        Initial weights: False (random), True (timm hub) or a local file path.
    coord_channels
        Give the encoder two coordinate channels (see :class:`msicoloc.models.CoordEncoder`).
    image_size
        Side of the square the images are fitted into.
    batch_size
        Images per step (clipped to n); the incomplete last batch is dropped.
    epochs
        Passes over the images.
    lr
        Adam learning rate, annealed to 0 with a cosine schedule over all steps.
    weight_decay
        Adam weight decay.
    temperature
        NT-Xent temperature.
    projection_dim
        Output width of the projection head.
    augment_params
        Augmentation strengths for both views.
    seed
        Seed of the initial weights, the augmentations and the shuffling.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    threads
        CPU threads for torch (None keeps torch's setting).
    channels_last
        Use the channels-last memory layout (faster convolutions on CPU).
    recalibrate
        After training, re-estimate batch-norm statistics on the original images (see
        :func:`recalibrate_batch_norm`).
    log_epoch
        Called with each epoch's record.

    Returns
    -------
    tuple
        The trained encoder (on the CPU, eval mode) and per-epoch records with keys
        ``epoch``, ``loss``, ``lr``, ``seconds``.
    """
    dev = resolve_device(device)
    if images.shape[0] < 2:
        raise InputError("images", "SimCLR needs at least 2 ion images")
    with reproducible(seed, threads, dev) as gen:
        encoder = build_encoder(
            encoder_name, in_chans=in_chans, pretrained=pretrained, coord_channels=coord_channels
        )
        head = ProjectionHead(feature_dim(encoder), projection_dim)
        encoder.to(dev)
        head.to(dev)
        if channels_last:
            encoder.to(memory_format=torch.channels_last)
        x_all, m = _to_device(images, mask, image_size, dev)
        n = x_all.shape[0]
        steps_per_epoch = n // min(batch_size, n)
        params = list(encoder.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=max(1, epochs * steps_per_epoch)
        )
        records = []
        encoder.train()
        head.train()
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            epoch_lr = opt.param_groups[0]["lr"]
            losses = []
            for idx in _batches(n, batch_size, gen, dev):
                x = x_all[idx]
                views = torch.cat(
                    [augment(x, m, augment_params, gen), augment(x, m, augment_params, gen)]
                )
                # One forward pass for both views: batch norm sees all 2B images.
                z = head(encoder(_channels_last(prepare_input(views, in_chans), channels_last)))
                z1, z2 = z.chunk(2)
                loss = nt_xent_loss(z1, z2, temperature)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append(loss.detach())
            rec = {
                "epoch": epoch,
                "loss": float(torch.stack(losses).mean()),
                "lr": epoch_lr,
                "seconds": time.perf_counter() - start,
            }
            records.append(rec)
            if log_epoch:
                log_epoch(rec)
        if recalibrate:
            recalibrate_batch_norm(encoder, x_all, in_chans, batch_size, channels_last)
        encoder.eval()
        encoder.to("cpu", memory_format=torch.contiguous_format)
    return encoder, records


@torch.no_grad()
def recalibrate_batch_norm(
    model: nn.Module, x_all: torch.Tensor, in_chans: int, batch_size: int, channels_last: bool
) -> None:
    """Replace batch-norm running statistics by exact averages over the original images.

    The running averages kept during training lag behind the weights and describe augmented
    views; features of the original images (embedding, classifier init) are more faithful
    with statistics measured on those images with the final weights.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    batch = min(batch_size, x_all.shape[0])
    for i in range(0, x_all.shape[0], batch):
        model(_channels_last(prepare_input(x_all[i : i + batch], in_chans), channels_last))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()


# ---------------------------------------------------------------------------------------------
# Embedding


@torch.no_grad()
def _forward_all(
    model: nn.Module, x_all: torch.Tensor, in_chans: int, batch_size: int, channels_last: bool
) -> torch.Tensor:
    outs = [
        model(_channels_last(prepare_input(x_all[i : i + batch_size], in_chans), channels_last))
        for i in range(0, x_all.shape[0], batch_size)
    ]
    return torch.cat(outs)


def embed(
    encoder: nn.Module,
    images: np.ndarray,
    mask: np.ndarray | None,
    *,
    image_size: int,
    batch_size: int = 256,
    device: str = "auto",
    threads: int | None = None,
) -> np.ndarray:
    """Encoder features of the original (un-augmented) images.

    Parameters
    ----------
    encoder
        A timm encoder (eval mode is set here).
    images
        ``(n, H, W)`` ion images.
    mask
        ``(H, W)`` tissue mask, or None.
    image_size
        Side of the square, as in training.
    batch_size
        Images per forward pass (memory only; results do not depend on it beyond rounding).
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    threads
        CPU threads for torch (None keeps torch's setting).

    Returns
    -------
    numpy.ndarray
        float32 ``(n, feature_dim)``.
    """
    dev = resolve_device(device)
    with reproducible(0, threads, dev):
        was_device = next(encoder.parameters()).device
        encoder.eval().to(dev)
        x_all, _ = _to_device(images, mask, image_size, dev)
        feats = _forward_all(encoder, x_all, input_channels(encoder), batch_size, False)
        encoder.to(was_device)
    return feats.float().cpu().numpy()


def train_autoencoder(
    images: np.ndarray,
    mask: np.ndarray | None,
    *,
    image_size: int,
    latent_dim: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str = "auto",
    threads: int | None = None,
) -> np.ndarray:
    """Train a convolutional autoencoder on the ion images; return their bottleneck features.

    The loss is the mean squared reconstruction error on tissue pixels of the images fitted
    into squares (each scaled to a maximum of 1 first, so that faint ions count as much as
    bright ones). Adam with cosine-annealed learning rate.

    Parameters
    ----------
    images, mask
        ``(n, H, W)`` ion images and the ``(H, W)`` tissue mask (or None).
    image_size
        Side of the squares (a multiple of 8).
    latent_dim
        Width of the bottleneck.
    epochs, batch_size, lr
        Optimisation.
    seed
        Seeds the initial weights and the batch order.
    device, threads
        Where to run; CPU threads for torch.

    Returns
    -------
    numpy.ndarray
        float32 ``(n, latent_dim)``.
    """
    dev = resolve_device(device)
    with reproducible(seed, threads, dev) as gen:
        x_all, m = _to_device(images, mask, image_size, dev)
        peak = x_all.amax(dim=(1, 2, 3), keepdim=True)
        x_all = x_all / torch.where(peak > 0, peak, torch.ones_like(peak))
        model = ConvAutoencoder(image_size, latent_dim).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        steps = max(1, epochs * len(_batches(len(x_all), batch_size, gen, dev)))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        weight = m.float() / m.float().mean().clamp_min(1e-6)
        for epoch in range(epochs):
            model.train()
            total = 0.0
            batches = _batches(len(x_all), batch_size, gen, dev)
            for idx in batches:
                x = x_all[idx]
                loss = (((model(x) - x) ** 2) * weight).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item()
            if epoch % 10 == 0 or epoch == epochs - 1:
                log.info("autoencoder epoch %d: loss %.5f", epoch, total / len(batches))
        model.eval()
        with torch.no_grad():
            feats = torch.cat([model.encode(x_all[i : i + 256]) for i in range(0, len(x_all), 256)])
    return feats.float().cpu().numpy()


def imagenet_features(
    images: np.ndarray,
    mask: np.ndarray | None,
    *,
    encoder_name: str,
    weights: str,
    image_size: int,
    batch_size: int = 64,
    device: str = "auto",
    threads: int | None = None,
) -> np.ndarray:
    """Pooled features of an ImageNet-pretrained CNN, without any training on the ion images.

    The transfer-learning baseline (Zhang et al. 2021; the paper's "pretrained + SC"): gray
    images copied to RGB, ImageNet normalisation, global-average-pooled last feature map.

    Parameters
    ----------
    images, mask
        ``(n, H, W)`` ion images and the ``(H, W)`` tissue mask (or None).
    encoder_name
        timm name of the network the weights belong to.
    weights
        Local weights file (a state dict, also of another implementation of the same network).
    image_size
        Side of the squares fed to the network.
    batch_size, device, threads
        Execution only.
    """
    encoder = build_encoder(encoder_name, in_chans=3, pretrained=weights)
    return embed(
        encoder,
        images,
        mask,
        image_size=image_size,
        batch_size=batch_size,
        device=device,
        threads=threads,
    )


# ---------------------------------------------------------------------------------------------
# Self-labeling


def self_label(
    encoder: nn.Module,
    images: np.ndarray,
    mask: np.ndarray | None,
    sc_labels: np.ndarray,
    *,
    n_clusters: int | None = None,
    image_size: int = 64,
    batch_size: int = 64,
    init_epochs: int = 20,
    init_lr: float = 1e-3,
    epochs: int = 15,
    lr: float = 1e-4,
    weight_decay: float = 1e-6,
    confidence_threshold: float | None = None,
    confidence_quantile: float | None = 0.4,
    reassign_confidence: float = 0.0,
    weak: AugmentParams = WEAK,
    strong: AugmentParams = STRONG,
    class_balanced: bool = True,
    freeze_bn: bool = True,
    seed: int = 0,
    device: str = "auto",
    threads: int | None = None,
    channels_last: bool = True,
    log_epoch: EpochLogger | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict], ClusterClassifier]:
    """Refine spectral-clustering labels by self-labeling (SCAN-style fine-tuning).

    First a linear classifier is fitted on the frozen encoder's features of the original
    images, with the spectral labels as targets. Then the whole network is fine-tuned: each
    image's pseudo-label is the argmax on a weakly augmented view, and only confident images
    contribute a cross-entropy loss on a strongly augmented view.

    Parameters
    ----------
    encoder
        The SimCLR-trained encoder (it is fine-tuned in place; pass a copy to keep it).
    images
        ``(n, H, W)`` ion images.
    mask
        ``(H, W)`` tissue mask, or None.
    sc_labels
        ``(n,)`` spectral-clustering labels in ``0..n_clusters-1``.
    n_clusters
        Number of classes; None means ``max(sc_labels) + 1``.
    image_size
        Side of the square, as in SimCLR training.
    batch_size
        Images per step (clipped to n); the incomplete last batch is dropped.
    init_epochs
        Epochs of the linear classifier on frozen features.
    init_lr
        Adam learning rate of the linear classifier.
    epochs
        Self-labeling epochs of the whole network (0: keep the initial classifier).
    lr
        Adam learning rate of self-labeling, cosine-annealed.
    weight_decay
        Adam weight decay.
    confidence_threshold
        Keep images whose weak-view max softmax is at least this (the paper's 0.9).
        Exclusive with ``confidence_quantile``.
    confidence_quantile
        Keep images whose weak-view max softmax is at least this quantile of the batch's
        (the reference code's 0.4).
    reassign_confidence
        An image leaves its spectral cluster only if the final classifier gives the new
        cluster at least this probability; otherwise it keeps its spectral label. 0 takes
        the classifier's label everywhere (the reference); a high value (0.9) makes
        self-labeling correct only what it is sure of.
    weak, strong
        Augmentations of the pseudo-label view and of the trained view.
    class_balanced
        Weight each pseudo-class by the inverse of its frequency among a batch's confident
        images, so that large clusters do not swallow small ones.
    freeze_bn
        Keep batch-norm layers in inference mode while fine-tuning (their scale and shift
        still learn): the classifier was fitted on features computed that way, and batch
        statistics of small, strongly augmented batches would shift them.
    seed
        Seed of the classifier initialisation, augmentations and shuffling.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    threads
        CPU threads for torch (None keeps torch's setting).
    channels_last
        Use the channels-last memory layout.
    log_epoch
        Called with each self-labeling epoch's record.

    Returns
    -------
    tuple
        ``labels`` (n,) int64, ``confidence`` (n,) float32 classifier probability of that
        label on the original images,
        per-epoch records (``epoch``, ``loss``, ``confident_share``), and the trained network
        (on the CPU, eval mode).
    """
    if (confidence_threshold is None) == (confidence_quantile is None):
        raise ValueError("set exactly one of confidence_threshold and confidence_quantile")
    sc = np.asarray(sc_labels, dtype=np.int64)
    n = images.shape[0]
    if sc.shape != (n,):
        raise ValueError(f"{sc.shape[0]} spectral labels for {n} images")
    k = int(sc.max()) + 1 if n_clusters is None else int(n_clusters)
    if sc.min() < 0 or sc.max() >= k:
        raise ValueError(f"spectral labels must lie in 0..{k - 1}")
    dev = resolve_device(device)
    with reproducible(seed, threads, dev) as gen:
        model = ClusterClassifier(encoder, k).to(dev)
        in_chans = input_channels(encoder)
        x_all, m = _to_device(images, mask, image_size, dev)
        y_all = torch.as_tensor(sc, device=dev)
        _init_classifier(model, x_all, y_all, in_chans, batch_size, init_epochs, init_lr, gen)
        if channels_last:
            model.encoder.to(memory_format=torch.channels_last)
        records = _fine_tune(
            model,
            x_all,
            m,
            in_chans,
            gen,
            batch_size=batch_size,
            epochs=epochs,
            lr=lr,
            weight_decay=weight_decay,
            threshold=confidence_threshold,
            quantile=confidence_quantile,
            weak=weak,
            strong=strong,
            class_balanced=class_balanced,
            freeze_bn=freeze_bn,
            channels_last=channels_last,
            log_epoch=log_epoch,
        )
        model.eval()
        probs = _forward_all(model, x_all, in_chans, 256, channels_last).softmax(dim=1)
        model.to("cpu", memory_format=torch.contiguous_format)
    probs = probs.cpu().numpy()
    labels = probs.argmax(axis=1)
    unsure = (labels != sc) & (probs.max(axis=1) < reassign_confidence)
    labels[unsure] = sc[unsure]
    confidence = probs[np.arange(n), labels]
    return labels.astype(np.int64), confidence, records, model


def _init_classifier(
    model: ClusterClassifier,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    in_chans: int,
    batch_size: int,
    epochs: int,
    lr: float,
    gen: torch.Generator,
) -> None:
    """Fit the linear head on frozen features of the original images (cross-entropy)."""
    model.encoder.eval()
    feats = _forward_all(model.encoder, x_all, in_chans, 256, False)
    opt = torch.optim.Adam(model.head.parameters(), lr=lr)
    n = feats.shape[0]
    for epoch in range(1, epochs + 1):
        losses = []
        for idx in _batches(n, batch_size, gen, feats.device):
            loss = F.cross_entropy(model.head(feats[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        if epoch == epochs or epoch % 10 == 0:
            log.info(
                "classifier init epoch %d: loss %.4f", epoch, float(torch.stack(losses).mean())
            )


def _fine_tune(
    model: ClusterClassifier,
    x_all: torch.Tensor,
    m: torch.Tensor,
    in_chans: int,
    gen: torch.Generator,
    *,
    batch_size: int,
    epochs: int,
    lr: float,
    weight_decay: float,
    threshold: float | None,
    quantile: float | None,
    weak: AugmentParams,
    strong: AugmentParams,
    class_balanced: bool,
    freeze_bn: bool,
    channels_last: bool,
    log_epoch: EpochLogger | None,
) -> list[dict]:
    n = x_all.shape[0]
    k = model.head.out_features
    steps_per_epoch = n // min(batch_size, n)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps_per_epoch))
    records = []
    for epoch in range(1, epochs + 1):
        model.train()
        if freeze_bn:
            for module in model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        total, kept, seen = 0.0, 0, 0
        for idx in _batches(n, batch_size, gen, x_all.device):
            x = x_all[idx]
            with torch.no_grad():
                xw = augment(x, m, weak, gen)
                probs = model(_channels_last(prepare_input(xw, in_chans), channels_last)).softmax(1)
            conf, target = probs.max(dim=1)
            cut = threshold if threshold is not None else torch.quantile(conf, quantile)
            keep = conf >= cut
            xs = augment(x, m, strong, gen)
            seen += len(idx)
            if not keep.any():
                continue
            weight = _class_weights(target[keep], k) if class_balanced else None
            logits = model(_channels_last(prepare_input(xs[keep], in_chans), channels_last))
            loss = F.cross_entropy(logits, target[keep], weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * int(keep.sum())
            kept += int(keep.sum())
        rec = {
            "epoch": epoch,
            "loss": total / kept if kept else math.nan,
            "confident_share": kept / seen if seen else 0.0,
        }
        records.append(rec)
        if log_epoch:
            log_epoch(rec)
    return records


def _class_weights(target: torch.Tensor, k: int) -> torch.Tensor:
    counts = torch.bincount(target, minlength=k).to(torch.float32)
    # Absent classes get weight 1; cross_entropy's weighted mean makes the scale irrelevant.
    return torch.where(counts > 0, target.numel() / counts.clamp_min(1), 1.0)


def save_history(records: list[dict], path: Path, columns: list[str]) -> None:
    """Write per-epoch records as a TSV with fixed float formatting.

    Parameters
    ----------
    records
        Dicts with at least ``columns``.
    path
        Output file.
    columns
        Column order.
    """
    lines = ["\t".join(columns)]
    for rec in records:
        cells = []
        for c in columns:
            v = rec[c]
            cells.append(str(v) if isinstance(v, int) else f"{v:.6g}")
        lines.append("\t".join(cells))
    path.write_text("\n".join(lines) + "\n")
