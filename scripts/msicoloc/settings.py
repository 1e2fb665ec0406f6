"""Typed settings of each step, built from the config section the rule passes whole.

A setting is defined once: its name, default, allowed values and meaning live in the config
(``config/config.yaml``, checked against ``config/schemas/config.schema.yaml``). The classes
here only give each step's section a type, so that the package takes one object per step and
holds no science defaults of its own; ``tests/test_config.py`` checks that schema, config and
these classes name the same keys.

Execution-only settings (how to compute, never what) are not part of these objects: steps read
them from the config directly (:data:`EXECUTION`), so that changing them reruns nothing.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

#: Execution-only settings: argument name of a step -> path in the config.
EXECUTION: dict[str, tuple[str, ...]] = {
    "device": ("device",),
    "chunk_values": ("convert", "chunk_values"),
    "inference_batch": ("embed", "batch_size"),
}


@dataclass(frozen=True)
class AugmentParams:
    """Strengths of the appearance augmentations (images on a [0, 1] scale).

    Ranges are ``(lo, hi)`` pairs drawn per image; a strength of 0 (or the range ``(0, 0)``)
    switches a change off. The meaning of each key is documented once, beside its value in
    ``config/config.yaml`` (``simclr.augment``).
    """

    blur_kernel: int
    blur_sigma: tuple[float, float]
    brightness: float
    contrast: float
    noise_sigma: tuple[float, float]
    noise_threshold: float
    noise_reference: float
    rotation: float
    zero_off_tissue: bool
    gamma: float
    admixture: float
    background: float
    counts: tuple[float, float]
    hotspots: float

    def __post_init__(self) -> None:
        if self.blur_kernel > 1 and self.blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be odd, got {self.blur_kernel}")
        for name in ("blur_sigma", "noise_sigma"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be a range 0 <= lo <= hi, got {(lo, hi)}")
        if not 0 <= self.brightness < 1 or not 0 <= self.contrast < 1:
            raise ValueError("brightness and contrast jitter must be in [0, 1)")
        if self.noise_reference <= 0:
            raise ValueError("noise_reference must be positive")
        lo, hi = self.counts
        if not (lo == hi == 0 or 0 < lo <= hi):
            raise ValueError(f"counts must be (0, 0) or a range 0 < lo <= hi, got {(lo, hi)}")
        if self.gamma < 0 or self.background < 0:
            raise ValueError("gamma and background must be >= 0")
        if not 0 <= self.admixture <= 0.5 or not 0 <= self.hotspots < 1:
            raise ValueError("admixture must be in [0, 0.5] and hotspots in [0, 1)")


@dataclass(frozen=True)
class ConvertSettings:
    SECTION: ClassVar[str] = "convert"
    mean_bin_ppm: float
    verify_checksum: bool


@dataclass(frozen=True)
class PeakSettings:
    SECTION: ClassVar[str] = "peaks"
    mz_list: str | None
    snr: float
    min_separation_ppm: float
    min_pixel_share: float
    smooth_ppm: float
    noise_window_mz: float
    mz_min: float | None
    mz_max: float | None
    max_peaks: int | None


@dataclass(frozen=True)
class NameSettings:
    SECTION: ClassVar[str] = "names"
    table: str | None
    tolerance_ppm: float


@dataclass(frozen=True)
class IonImageSettings:
    SECTION: ClassVar[str] = "ion_images"
    tolerance_ppm: float
    normalisation: Literal["tic", "rms", "none"]
    hotspot_quantile: float | None
    mask: Literal["auto", "otsu", "measured"]
    montage_max: int


@dataclass(frozen=True)
class SimCLRSettings:
    SECTION: ClassVar[str] = "simclr"
    encoder: str
    pretrained: bool | str
    in_chans: int
    coord_channels: bool
    image_size: int
    batch_size: int
    epochs: int
    lr: float
    weight_decay: float
    temperature: float
    projection_dim: int
    channels_last: bool
    augment: AugmentParams


@dataclass(frozen=True)
class ClusterSettings:
    SECTION: ClassVar[str] = "cluster"
    n_clusters: int | Literal["auto"]
    auto_range: tuple[int, int]
    n_neighbors: int
    affinity: Literal["local_scaling", "connectivity"]
    eigen_solver: Literal["auto", "amg", "lobpcg", "arpack"]
    assign_labels: Literal["kmeans", "discretize", "cluster_qr"]


@dataclass(frozen=True)
class SelfLabelSettings:
    SECTION: ClassVar[str] = "self_label"
    batch_size: int
    init_epochs: int
    init_lr: float
    epochs: int
    lr: float
    weight_decay: float
    confidence: float
    confidence_mode: Literal["threshold", "quantile"]
    reassign_confidence: float
    class_balanced: bool
    freeze_bn: bool
    weak: AugmentParams
    strong: AugmentParams


@dataclass(frozen=True)
class AutoencoderSettings:
    image_size: int
    latent_dim: int
    epochs: int
    batch_size: int
    lr: float


@dataclass(frozen=True)
class ImagenetSettings:
    encoder: str
    weights: str | None
    image_size: int


@dataclass(frozen=True)
class CompareSettings:
    SECTION: ClassVar[str] = "compare"
    smooth_sigma: float
    pca_components: int
    nmf_components: int
    autoencoder: AutoencoderSettings
    imagenet: ImagenetSettings


@dataclass(frozen=True)
class AnswerSettings:
    SECTION: ClassVar[str] = "answer"
    method: Literal["pearson_smooth", "simclr_selflabel"]


@dataclass(frozen=True)
class EvaluateSettings:
    SECTION: ClassVar[str] = "evaluate"
    annotation_tolerance_ppm: float
    isotope_tolerance_ppm: float
    isotope_charges: tuple[int, ...]
    isotope_min_correlation: float
    isotope_max_order: int
    top_n: int
    network_min_score: float


@dataclass(frozen=True)
class ReportSettings:
    SECTION: ClassVar[str] = "report"
    percentile: float
    max_thumbnails: int
    umap_n_neighbors: int
    umap_min_dist: float


#: Every step's settings class, by config section.
SECTIONS: dict[str, type] = {
    cls.SECTION: cls
    for cls in (
        ConvertSettings,
        PeakSettings,
        NameSettings,
        IonImageSettings,
        SimCLRSettings,
        ClusterSettings,
        SelfLabelSettings,
        CompareSettings,
        AnswerSettings,
        EvaluateSettings,
        ReportSettings,
    )
}

S = TypeVar("S")


def from_config(cls: type[S], section: Mapping[str, Any], where: str | None = None) -> S:
    """Build settings of type ``cls`` from a config mapping (every key, no other).

    Nested sections become their own settings objects; YAML lists become tuples where the
    field is a tuple. Execution-only keys of a section (:data:`EXECUTION`) are ignored.
    """
    if isinstance(section, cls):
        return section
    where = where or getattr(cls, "SECTION", cls.__name__)
    names = [f.name for f in dataclasses.fields(cls)]
    ignored = {path[-1] for path in EXECUTION.values() if path[:-1] == (where,)}
    missing = [n for n in names if n not in section]
    unknown = [k for k in section if k not in names and k not in ignored]
    if missing or unknown:
        raise ValueError(f"config section {where}: missing keys {missing}, unknown keys {unknown}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name in names:
        value, hint = section[name], hints[name]
        if dataclasses.is_dataclass(hint):
            value = from_config(hint, value, f"{where}.{name}")
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        values[name] = value
    return cls(**values)


def replace(settings: S, **changes: Any) -> S:
    """``settings`` with some values changed; nested mappings update nested settings."""
    values = {}
    for key, value in changes.items():
        current = getattr(settings, key)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            value = replace(current, **value)
        values[key] = value
    return dataclasses.replace(settings, **values)
