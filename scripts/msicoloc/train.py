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
from msicoloc.augment import augment, fit_mask, fit_square
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
from msicoloc.settings import (
    AugmentParams,
    AutoencoderSettings,
    SelfLabelSettings,
    SimCLRSettings,
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


def save_checkpoint(path: str | os.PathLike[str], checkpoint: dict) -> None:
    """Write a checkpoint of :func:`encoder_checkpoint` atomically (see :func:`load_encoder`)."""
    from msicoloc.step import atomic_output

    # Saved through a file object: torch then names the archive "archive" instead of after
    # the (random) temporary file, so the same weights give the same bytes.
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        torch.save(checkpoint, f)


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
    settings: SimCLRSettings,
    *,
    seed: int,
    device: str = "auto",
    threads: int | None = None,
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
    settings
        The ``simclr`` section of the config. The batch is clipped to n; the incomplete
        last batch of an epoch is dropped; the learning rate is cosine-annealed to 0.
    seed
        Seed of the initial weights, the augmentations and the shuffling.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    threads
        CPU threads for torch (None keeps torch's setting).
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
    s = settings
    in_chans, image_size, batch_size, epochs = s.in_chans, s.image_size, s.batch_size, s.epochs
    channels_last, augment_params = s.channels_last, s.augment
    dev = resolve_device(device)
    if images.shape[0] < 2:
        raise InputError("images", "SimCLR needs at least 2 ion images")
    with reproducible(seed, threads, dev) as gen:
        encoder = build_encoder(
            s.encoder, in_chans=in_chans, pretrained=s.pretrained, coord_channels=s.coord_channels
        )
        head = ProjectionHead(feature_dim(encoder), s.projection_dim)
        encoder.to(dev)
        head.to(dev)
        if channels_last:
            encoder.to(memory_format=torch.channels_last)
        x_all, m = _to_device(images, mask, image_size, dev)
        n = x_all.shape[0]
        steps_per_epoch = n // min(batch_size, n)
        params = list(encoder.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)
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
                loss = nt_xent_loss(z1, z2, s.temperature)
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
    settings: AutoencoderSettings,
    *,
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
    settings
        The ``compare.autoencoder`` section of the config (image size, a multiple of 8;
        bottleneck width; optimisation).
    seed
        Seeds the initial weights and the batch order.
    device, threads
        Where to run; CPU threads for torch.

    Returns
    -------
    numpy.ndarray
        float32 ``(n, latent_dim)``.
    """
    image_size, epochs, batch_size = settings.image_size, settings.epochs, settings.batch_size
    dev = resolve_device(device)
    with reproducible(seed, threads, dev) as gen:
        x_all, m = _to_device(images, mask, image_size, dev)
        peak = x_all.amax(dim=(1, 2, 3), keepdim=True)
        x_all = x_all / torch.where(peak > 0, peak, torch.ones_like(peak))
        model = ConvAutoencoder(image_size, settings.latent_dim).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
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
    settings: SelfLabelSettings,
    *,
    image_size: int,
    seed: int,
    channels_last: bool,
    n_clusters: int | None = None,
    device: str = "auto",
    threads: int | None = None,
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
    settings
        The ``self_label`` section of the config: the linear classifier's epochs and
        learning rate, then the fine-tuning's, the confidence cut (a threshold on the
        weak view's max softmax, the paper's 0.9, or a quantile of the batch's, the
        reference code's 0.4), ``reassign_confidence`` (an image leaves its spectral cluster
        only at this probability; 0 takes the classifier's label everywhere), the class
        balancing, frozen batch norm and the weak/strong augmentations.
    image_size
        Side of the square, as in SimCLR training.
    n_clusters
        Number of classes; None means ``max(sc_labels) + 1``.
    seed
        Seed of the classifier initialisation, augmentations and shuffling.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    threads
        CPU threads for torch (None keeps torch's setting).
    channels_last
        Use the channels-last memory layout (simclr.channels_last).
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
    s = settings
    batch_size = s.batch_size
    if s.confidence_mode not in ("threshold", "quantile"):
        raise ValueError(f"confidence_mode must be threshold or quantile, not {s.confidence_mode}")
    threshold = s.confidence if s.confidence_mode == "threshold" else None
    quantile = s.confidence if s.confidence_mode == "quantile" else None
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
        _init_classifier(model, x_all, y_all, in_chans, batch_size, s.init_epochs, s.init_lr, gen)
        if channels_last:
            model.encoder.to(memory_format=torch.channels_last)
        records = _fine_tune(
            model,
            x_all,
            m,
            in_chans,
            gen,
            batch_size=batch_size,
            epochs=s.epochs,
            lr=s.lr,
            weight_decay=s.weight_decay,
            threshold=threshold,
            quantile=quantile,
            weak=s.weak,
            strong=s.strong,
            class_balanced=s.class_balanced,
            freeze_bn=s.freeze_bn,
            channels_last=channels_last,
            log_epoch=log_epoch,
        )
        model.eval()
        probs = _forward_all(model, x_all, in_chans, 256, channels_last).softmax(dim=1)
        model.to("cpu", memory_format=torch.contiguous_format)
    probs = probs.cpu().numpy()
    labels = probs.argmax(axis=1)
    unsure = (labels != sc) & (probs.max(axis=1) < s.reassign_confidence)
    labels[unsure] = sc[unsure]
    labels = _keep_every_class(labels, sc, k)
    confidence = probs[np.arange(n), labels]
    return labels.astype(np.int64), confidence, records, model


def _keep_every_class(labels: np.ndarray, sc: np.ndarray, k: int) -> np.ndarray:
    """Give a class the classifier left empty its spectral members back, so that the K
    clusters asked for stay K (logged: the classifier found no image of that pattern)."""
    for _ in range(k):
        empty = [c for c in range(k) if not np.any(labels == c)]
        if not empty:
            break
        log.warning("self-labeling emptied cluster(s) %s: their spectral members kept", empty)
        back = np.isin(sc, empty)
        labels[back] = sc[back]
    return labels


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
    """Write per-epoch records as a TSV with fixed float formatting, atomically.

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
    from msicoloc.step import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
