"""Clustering metrics, annotation matching and isotope detection.

Purity is the "accuracy" of Hu et al. (each cluster votes its majority label, so more clusters
score higher); Hungarian accuracy matches clusters to labels one to one, so it does not;
ARI and NMI are the usual chance-corrected and information-theoretic scores. Isotopic recall
needs no annotation: the share of isotope ion images that land in the cluster of their
monoisotopic ion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from msicoloc import C13_SHIFT, InputError


def contingency(labels_true, labels_pred) -> np.ndarray:
    """Counts of (true class, predicted cluster) pairs, classes as rows."""
    _, t = np.unique(np.asarray(labels_true), return_inverse=True)
    _, p = np.unique(np.asarray(labels_pred), return_inverse=True)
    table = np.zeros((t.max() + 1, p.max() + 1), dtype=np.int64)
    np.add.at(table, (t, p), 1)
    return table


def purity(labels_true, labels_pred) -> float:
    """Share of items whose cluster's majority label is their own label."""
    table = contingency(labels_true, labels_pred)
    return float(table.max(axis=0).sum() / table.sum())


def hungarian_accuracy(labels_true, labels_pred) -> float:
    """Accuracy under the best one-to-one matching of clusters to classes.

    With more clusters than classes, the unmatched clusters count as wrong.
    """
    table = contingency(labels_true, labels_pred)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / table.sum())


def scores(labels_true, labels_pred) -> dict[str, float]:
    """Purity, Hungarian accuracy, ARI and NMI of one clustering against the annotation."""
    return {
        "purity": purity(labels_true, labels_pred),
        "hungarian_accuracy": hungarian_accuracy(labels_true, labels_pred),
        "ari": float(adjusted_rand_score(labels_true, labels_pred)),
        "nmi": float(normalized_mutual_info_score(labels_true, labels_pred)),
    }


def match_annotations(
    peak_mz: np.ndarray, ann_mz: np.ndarray, ann_label: np.ndarray, tolerance_ppm: float
) -> np.ndarray:
    """Label of each peak from the nearest annotated m/z within ``tolerance_ppm``.

    Returns an object array with None for peaks that no annotation matches. When two peaks
    match one annotation, only the closer takes its label.
    """
    labels = np.full(len(peak_mz), None, dtype=object)
    if len(ann_mz) == 0 or len(peak_mz) == 0:
        return labels
    order = np.argsort(ann_mz)
    ann_mz, ann_label = np.asarray(ann_mz, float)[order], np.asarray(ann_label)[order]
    pos = np.clip(np.searchsorted(ann_mz, peak_mz), 1, len(ann_mz) - 1)
    left, right = ann_mz[pos - 1], ann_mz[pos]
    nearest = np.where(np.abs(peak_mz - left) <= np.abs(right - peak_mz), pos - 1, pos)
    if len(ann_mz) == 1:
        nearest = np.zeros(len(peak_mz), dtype=int)
    err = np.abs(peak_mz - ann_mz[nearest]) / ann_mz[nearest] * 1e6
    ok = err <= tolerance_ppm
    best: dict[int, int] = {}
    for i in np.flatnonzero(ok):
        j = int(nearest[i])
        if j not in best or err[i] < err[best[j]]:
            best[j] = int(i)
    for j, i in best.items():
        labels[i] = ann_label[j]
    return labels


def read_annotations(path, peak_mz: np.ndarray, tolerance_ppm: float) -> tuple[np.ndarray, int]:
    """Annotation labels of the peaks from a TSV with columns ``mz`` and ``label``.

    Returns the labels (None where no annotation matches, see :func:`match_annotations`) and
    the number of annotation rows.
    """
    ann = pd.read_csv(path, sep="\t")
    if not {"mz", "label"} <= set(ann.columns):
        raise InputError(path, "annotations need columns 'mz' and 'label'")
    truth = match_annotations(
        peak_mz, ann["mz"].to_numpy(float), ann["label"].astype(str).to_numpy(), tolerance_ppm
    )
    if not any(t is not None for t in truth):
        raise InputError(path, "no annotated m/z matches a peak")
    return truth, len(ann)


#: Gaussian blur (pixels) before an isotope pair's image correlation: a weak isotope's image
#: is mostly counting noise pixel by pixel.
ISOTOPE_BLUR = 1.0


def image_correlation(
    images: np.ndarray, mask: np.ndarray | None = None, smooth_sigma: float = 0.0
) -> np.ndarray:
    """Pearson correlation matrix of ion images over the tissue pixels.

    ``smooth_sigma`` (pixels) applies a Gaussian blur first: a weak ion's image is mostly
    counting noise pixel by pixel, and its likeness to its partner shows only at a slightly
    coarser scale.
    """
    if smooth_sigma > 0:
        images = ndimage.gaussian_filter(images, (0, smooth_sigma, smooth_sigma))
    flat = images.reshape(len(images), -1)
    if mask is not None:
        flat = flat[:, mask.ravel()]
    flat = flat - flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1)
    norm[norm == 0] = 1.0
    flat = flat / norm[:, None]
    return flat @ flat.T


def find_isotopes(
    mz: np.ndarray,
    images: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    *,
    corr: np.ndarray | None = None,
    tolerance_ppm: float = 5.0,
    charges: tuple[int, ...] = (1,),
    min_correlation: float = 0.5,
    max_order: int = 3,
    smooth_sigma: float = ISOTOPE_BLUR,
) -> pd.DataFrame:
    """Isotope pairs among the peaks: +k * 1.00336 / z Da, correlated images, chained.

    A peak is an isotope of the nearest lighter peak that lies one 13C step away (for any of
    ``charges``) within ``tolerance_ppm`` and whose image correlates at least
    ``min_correlation`` (Pearson over the tissue after a Gaussian blur of ``smooth_sigma``
    pixels); it then inherits that peak's monoisotopic ion, so M+2 is linked to M
    through M+1. Chains stop after ``max_order`` steps.

    Returns a table with columns ``mz`` (the isotope), ``mono_mz``, ``mono_index``, ``index``,
    ``order`` (1 for M+1, 2 for M+2, ...), ``charge``, ``ppm_error`` and ``correlation``
    (with the peak one step lighter), sorted by ``mz``. ``corr``: that correlation matrix,
    computed elsewhere (e.g. blockwise, see :func:`msicoloc.baselines.classical_grams`, "blurred"),
    instead of from ``images``.
    """
    mz = np.asarray(mz, dtype=float)
    if corr is None:
        corr = image_correlation(images, mask, smooth_sigma)
    by_mz = np.argsort(mz)
    sorted_mz = mz[by_mz]
    mono = np.arange(len(mz))
    order = np.zeros(len(mz), dtype=int)
    rows = []
    for i in by_mz:  # lighter first, so chains are known when extended
        best = None
        for z in charges:
            target = mz[i] - C13_SHIFT / z
            k = int(np.clip(np.searchsorted(sorted_mz, target), 1, len(mz) - 1))
            k = k - 1 if abs(sorted_mz[k - 1] - target) <= abs(sorted_mz[k] - target) else k
            j = int(by_mz[k])
            err = (mz[i] - C13_SHIFT / z - mz[j]) / mz[j] * 1e6
            if j != i and abs(err) <= tolerance_ppm and corr[i, j] >= min_correlation:
                if best is None or corr[i, j] > best[2]:
                    best = (j, z, corr[i, j], err)
        if best is None or order[best[0]] >= max_order:
            continue
        j, z, c, err = best
        mono[i], order[i] = mono[j], order[j] + 1
        rows.append((mz[i], mz[mono[i]], int(mono[i]), int(i), int(order[i]), z, err, c))
    cols = ["mz", "mono_mz", "mono_index", "index", "order", "charge", "ppm_error", "correlation"]
    return pd.DataFrame(rows, columns=cols).sort_values("mz", ignore_index=True)


def isotopic_recall(isotopes: pd.DataFrame, labels: np.ndarray) -> float:
    """Share of isotope images clustered with their monoisotopic image (NaN if none)."""
    if isotopes.empty:
        return float("nan")
    labels = np.asarray(labels)
    same = labels[isotopes["index"].to_numpy()] == labels[isotopes["mono_index"].to_numpy()]
    return float(same.mean())
