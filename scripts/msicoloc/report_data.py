"""The report's inputs, read once and cross-checked: one :class:`Run` per data set."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from msicoloc import InputError
from msicoloc.cluster import read_clusters, read_n_clusters
from msicoloc.embeddings import read_embeddings
from msicoloc.images import ion_image_attrs, read_ion_images, read_mask
from msicoloc.spectra import SpectraFile


@dataclass
class Run:
    """Everything the report shows, read once from the step's inputs."""

    dataset: str
    spectra_attrs: dict
    mean_mz: np.ndarray
    mean_intensity: np.ndarray
    mean_kind: str
    mean_bin_ppm: float
    stack: np.ndarray  # the small level of ion_images.h5 (what figures draw)
    mz: np.ndarray
    mask: np.ndarray  # tissue mask of the small level
    full_mask: np.ndarray  # tissue mask at full resolution (sizes and counts)
    image_attrs: dict
    features: np.ndarray
    embed_attrs: dict
    clusters: pd.DataFrame
    labels: np.ndarray
    n_clusters: int
    metrics: dict
    methods: pd.DataFrame
    isotopes: pd.DataFrame
    simclr_history: pd.DataFrame
    self_label_history: pd.DataFrame
    k_choice: dict  # n_clusters.json: the number of clusters and how it was chosen

    @property
    def pixel_size_um(self) -> np.ndarray:
        """Pixel size of the acquisition (x, y) in micrometres; NaN if not recorded."""
        size = np.asarray(self.spectra_attrs.get("pixel_size_um", [np.nan, np.nan]), float)
        return size if size.shape == (2,) else np.array([np.nan, np.nan])

    @property
    def figure_pixel_um(self) -> np.ndarray:
        """Pixel size of the small level that figures draw (blocks of pixels averaged)."""
        return self.pixel_size_um * int(self.image_attrs.get("small_factor", 1))


COLOCALIZATION_COLUMNS = ("mz", "neighbour_mz", "learned", "metaspace")


def read_colocalization(path: str | Path, mz: np.ndarray) -> pd.DataFrame:
    """colocalization.tsv with each pair's ion indices (``ion``, ``neighbour``) into ``mz``,
    the ion images' m/z; a missing column or an m/z that is not an ion image's (a table of an
    earlier run) stops with one line naming the file and the row."""
    try:
        table = pd.read_csv(path, sep="\t")
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot read it ({err})") from None
    if missing := [c for c in COLOCALIZATION_COLUMNS if c not in table]:
        raise InputError(path, f"no column {', '.join(missing)}")
    index = {round(float(m), 6): i for i, m in enumerate(mz)}  # tables keep 6 decimals
    for column, key in (("mz", "ion"), ("neighbour_mz", "neighbour")):
        values = pd.to_numeric(table[column], errors="coerce").round(6)
        found = values.map(index)
        if found.isna().any():
            row = int(np.flatnonzero(found.isna())[0])
            raise InputError(
                path,
                f"row {row + 2}: {column} {table[column].iloc[row]} is not the m/z of an ion "
                "image (stale result of an earlier run?)",
            )
        table[key] = found.astype(int)
    return table


def dataset_parameters(
    parameters: dict | str | None, *, n_clusters: int | None, mz_list: str | None
) -> dict:
    """The config sections to show, with the values the sample sheet set for this data set."""
    shown = json.loads(parameters) if isinstance(parameters, str) else dict(parameters or {})
    for section, key, value in (
        ("cluster", "n_clusters", n_clusters),
        ("peaks", "mz_list", mz_list),
    ):
        if value is not None:  # None: not given (command line), keep the config's value
            shown[section] = {**shown.get(section, {}), key: value}
    return shown


def load_run(
    dataset: str,
    spectra: Path,
    images: Path,
    embeddings: Path,
    clusters: Path,
    metrics: Path,
    methods_table: Path,
    isotopes: Path,
    simclr_history: Path,
    self_label_history: Path,
    k_choice: Path | None = None,
) -> Run:
    """Read and cross-check the inputs (the ion order must agree everywhere)."""
    with SpectraFile(spectra) as sf:
        mean_mz, mean_int, _, kind = sf.mean_spectrum()
        attrs = dict(sf.attrs)
        bin_ppm = float(sf.h5["mean_spectrum"].attrs.get("bin_ppm", 0.0))
    # the report draws from the small level; counts come from the full-resolution mask
    stack, mz, mask = read_ion_images(images, "small")
    full_mask = read_mask(images)
    image_attrs = ion_image_attrs(images)
    _, features, embed_attrs = read_embeddings(embeddings, mz)
    features = features["features"]
    table = read_clusters(clusters, mz)
    labels = table["cluster"].to_numpy(int)
    scores = json.loads(Path(metrics).read_text())
    n_clusters = max(int(scores.get("n_clusters", 0)), int(labels.max()) + 1)
    return Run(
        dataset=dataset,
        spectra_attrs=attrs,
        mean_mz=mean_mz,
        mean_intensity=mean_int,
        mean_kind=kind,
        mean_bin_ppm=bin_ppm,
        stack=stack,
        mz=mz,
        mask=mask,
        full_mask=full_mask,
        image_attrs=image_attrs,
        features=features,
        embed_attrs=embed_attrs,
        clusters=table,
        labels=labels,
        n_clusters=n_clusters,
        metrics=scores,
        methods=pd.read_csv(methods_table, sep="\t"),
        isotopes=pd.read_csv(isotopes, sep="\t"),
        simclr_history=pd.read_csv(simclr_history, sep="\t"),
        self_label_history=pd.read_csv(self_label_history, sep="\t"),
        k_choice=read_n_clusters(k_choice) if k_choice else {"n_clusters": n_clusters},
    )
