"""Classical co-localization features, for the baselines next to the learned features.

Each function turns an ion-image stack ``(n, H, W)`` and its tissue mask into one feature
vector per image whose cosine similarity is a co-localization score the field uses; clustering
these with the same kNN spectral clustering as the learned features makes the comparison like
for like. Only tissue pixels enter.

=====================  ========================================================================
function               cosine of the vectors is ...
=====================  ========================================================================
pixel_vectors          pixel-vector cosine (intensities as they are)
pearson_vectors        Pearson correlation (optionally of lightly smoothed images)
spearman_vectors       Spearman rank correlation (invariant to any monotone contrast curve)
metaspace_vectors      METASPACE's score: below-median pixels zeroed, 3x3 median filter, cosine
pca_vectors            cosine in the space of the leading principal components of the images
nmf_vectors            cosine of the images' loadings on non-negative spatial factors
=====================  ========================================================================

The workflow computes them blockwise from ``ion_images.h5`` (:func:`representation_from_file`),
so that memory does not grow with pixels x ions: each method's per-image transform runs on
blocks of whole images, the transformed pixels go to a temporary file when they do not fit,
and their Gram matrix accumulates over blocks of pixels. Vectors with that Gram matrix
(:func:`gram_features`) have the same cosines as the transformed images, so clustering them is
clustering those. The whole-array functions above are the reference the tests compare with.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
from scipy import ndimage, stats

from msicoloc.settings import CompareSettings


def pixel_vectors(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The tissue pixels of every image as one vector: cosine = pixel-vector cosine."""
    return images[:, mask].astype(np.float32)


def smooth_on_tissue(images: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur that only averages tissue pixels (normalised convolution), 0 off tissue.

    A plain blur would pull the zeros around the tissue into its edge pixels, so every image
    would gain the same dark rim and look more alike than it is.
    """
    if sigma <= 0:
        return np.where(mask, images, 0.0).astype(np.float32)
    m = mask.astype(np.float32)
    weight = ndimage.gaussian_filter(m, sigma)
    out = np.empty(images.shape, dtype=np.float32)
    for i, img in enumerate(images):
        num = ndimage.gaussian_filter(np.where(mask, img, 0.0).astype(np.float32), sigma)
        out[i] = np.where(mask, num / np.maximum(weight, 1e-6), 0.0)
    return out


def _centred(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=1, keepdims=True)).astype(np.float32)


def pearson_vectors(images: np.ndarray, mask: np.ndarray, sigma: float = 0.0) -> np.ndarray:
    """Tissue pixels minus their mean: cosine = Pearson correlation of the two images.

    Centring makes the score blind to an additive on-tissue background; ``sigma`` > 0 first
    smooths each image on the tissue (:func:`smooth_on_tissue`), which averages counting noise
    over neighbouring pixels before it is compared.
    """
    return _centred(smooth_on_tissue(images, mask, sigma)[:, mask])


def spearman_vectors(images: np.ndarray, mask: np.ndarray, sigma: float = 0.0) -> np.ndarray:
    """Centred ranks of the tissue pixels: cosine = Spearman rank correlation.

    Ranks ignore how intensity maps to concentration (any increasing contrast curve gives the
    same ranks) and tame hotspots, which only reach the top rank. Ties share their mean rank.
    """
    pixels = smooth_on_tissue(images, mask, sigma)[:, mask]
    return _centred(stats.rankdata(pixels, axis=1))


def metaspace_vectors(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """METASPACE-style: values below the image's median set to 0, then a 3x3 median filter.

    The median is taken over the tissue pixels; the filter runs on the whole canvas (0 off
    tissue) and the tissue pixels are kept.
    """
    out = np.empty((len(images), int(mask.sum())), dtype=np.float32)
    for i, img in enumerate(images):
        med = np.median(img[mask])
        kept = np.where(img < med, 0.0, img)
        out[i] = ndimage.median_filter(kept, size=3, mode="constant")[mask]
    return out


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pca_vectors(
    images: np.ndarray, mask: np.ndarray, n_components: int, random_state: int
) -> np.ndarray:
    """Scores of each image on the leading principal components of the standardised images.

    Each image is centred and scaled to unit norm first (so bright ions do not own the
    components); the components are spatial patterns shared by many ions, and an image is
    described by how much of each it carries (the dimensionality reduction of the MSI
    co-localization review; cosine in this space is Pearson correlation of the images'
    projections onto the leading patterns).
    """
    from sklearn.decomposition import PCA

    x = _unit_rows(_centred(images[:, mask]))
    k = max(1, min(n_components, x.shape[0] - 1, x.shape[1]))
    return PCA(k, random_state=random_state).fit_transform(x).astype(np.float32)


def nmf_vectors(
    images: np.ndarray, mask: np.ndarray, n_components: int, random_state: int
) -> np.ndarray:
    """Loadings of each image on non-negative spatial factors (NMF of images x pixels).

    Each image is scaled to a maximum of 1 first; NMF then explains every image as an additive
    mix of non-negative spatial patterns, which suits intensities and is the other
    dimensionality reduction MSI co-localization studies use.
    """
    from sklearn.decomposition import NMF

    x = np.maximum(images[:, mask].astype(np.float64), 0.0)
    x /= np.maximum(x.max(axis=1, keepdims=True), 1e-12)
    k = max(1, min(n_components, x.shape[0], x.shape[1]))
    model = NMF(k, init="nndsvda", random_state=random_state, max_iter=400)
    return model.fit_transform(x).astype(np.float32)


#: The classical representations by name, as evaluate and the answer step call them.
CLASSICAL = ("pixel_cosine", "pearson", "pearson_smooth", "spearman", "metaspace", "pca", "nmf")


def representation(
    name: str, images: np.ndarray, mask: np.ndarray, settings: CompareSettings, random_state: int
) -> np.ndarray:
    """Feature vectors of a classical method by name (see :data:`CLASSICAL`).

    Parameters
    ----------
    name
        One of :data:`CLASSICAL`.
    images, mask
        ``(n, H, W)`` ion images and their ``(H, W)`` tissue mask.
    settings
        The config's ``compare`` section: ``smooth_sigma`` (pearson_smooth),
        ``pca_components``, ``nmf_components``.
    random_state
        Seed of PCA's and NMF's solvers.
    """
    if name == "pixel_cosine":
        return pixel_vectors(images, mask)
    if name == "pearson":
        return pearson_vectors(images, mask)
    if name == "pearson_smooth":
        return pearson_vectors(images, mask, settings.smooth_sigma)
    if name == "spearman":
        return spearman_vectors(images, mask)
    if name == "metaspace":
        return metaspace_vectors(images, mask)
    if name == "pca":
        return pca_vectors(images, mask, settings.pca_components, random_state)
    if name == "nmf":
        return nmf_vectors(images, mask, settings.nmf_components, random_state)
    raise ValueError(f"unknown classical method {name!r}; known: {CLASSICAL}")


def cosine_similarity(features: np.ndarray) -> np.ndarray:
    """Cosine similarity matrix of the rows (a zero row has similarity 0 to everything)."""
    f = np.asarray(features, dtype=np.float64)
    norm = np.linalg.norm(f, axis=1)
    f = f / np.where(norm > 0, norm, 1.0)[:, None]
    return f @ f.T


def nearest_neighbours(similarity: np.ndarray, top_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and similarities of each row's ``top_n`` most similar other rows."""
    sim = similarity.copy()
    np.fill_diagonal(sim, -np.inf)
    top_n = min(top_n, len(sim) - 1)
    idx = np.argsort(-sim, axis=1, kind="stable")[:, :top_n]
    return idx, np.take_along_axis(sim, idx, axis=1)


# --- blockwise, from ion_images.h5 ----------------------------------------------------------


def gram_features(gram: np.ndarray) -> np.ndarray:
    """Vectors (n x r, float64) whose inner products are ``gram``: their cosines are those of
    the vectors the Gram matrix came from (r = its numerical rank)."""
    values, vectors = np.linalg.eigh(np.asarray(gram, dtype=np.float64))
    keep = values > max(values.max(), 0.0) * 1e-12
    return vectors[:, keep] * np.sqrt(values[keep])


def streamed_gram(
    path: str | os.PathLike[str], transform: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """Gram matrix (n x n, float64) of ``transform(images, mask)`` over all ion images of an
    ion_images.h5, holding about :data:`msicoloc.images.BLOCK_BYTES` of data at a time.

    ``transform`` maps a block of whole images (b, H, W) to one row per image (b, P) and
    must treat each image on its own (every method here does).
    """
    from msicoloc import images as im  # read at call time: the bound is one setting

    max_bytes = im.BLOCK_BYTES
    with h5py.File(path, "r") as f:
        images, mask = f["images"], np.asarray(f["mask"][()], dtype=bool)
        n, h, w = images.shape
        per_block = max(1, min(n, max_bytes // max(1, 8 * h * w)))
        p = int(mask.sum())
        chunk_rows = min(per_block, 64)
        with im.scratch_array(Path(path), n, p, chunk_rows, 2**14, 64 * 2**20) as rows:
            for i in range(0, n, per_block):
                block = np.asarray(images[i : i + per_block], dtype=np.float32)
                rows[i : i + per_block] = transform(block, mask)
            gram = np.zeros((n, n))
            step = max(1, min(p, max_bytes // max(1, 4 * n)))
            for j in range(0, p, step):
                x = np.asarray(rows[:, j : j + step], dtype=np.float32)
                gram += x @ x.T
    return gram


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def blurred_correlation(path: str | os.PathLike[str], sigma: float) -> np.ndarray:
    """Pearson correlation matrix of the images after a Gaussian blur of ``sigma`` pixels
    (the isotope test's, :func:`msicoloc.metrics.image_correlation`), blockwise."""

    def transform(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if sigma > 0:
            images = ndimage.gaussian_filter(images, (0, sigma, sigma))
        return _unit(_centred(images[:, mask]))

    return streamed_gram(path, transform)


def representation_from_file(
    name: str, path: str | os.PathLike[str], settings: CompareSettings, random_state: int
) -> np.ndarray:
    """:func:`representation` of the ion images in an ion_images.h5, in bounded memory.

    Vectors with the method's cosines (see :func:`gram_features`); PCA is computed exactly
    from the images' correlation matrix; NMF, which has no Gram form, runs on the small
    level of the file (the images themselves when they are small).
    """
    sigma = settings.smooth_sigma
    transforms = {
        "pixel_cosine": pixel_vectors,
        "pearson": pearson_vectors,
        "pearson_smooth": lambda images, mask: pearson_vectors(images, mask, sigma),
        "spearman": spearman_vectors,
        "metaspace": metaspace_vectors,
        "pca": lambda images, mask: _unit(pearson_vectors(images, mask)),
    }
    if name == "nmf":
        from msicoloc.images import read_ion_images

        images, _, mask = read_ion_images(path, "small")
        return nmf_vectors(images, mask, settings.nmf_components, random_state)
    if name not in transforms:
        raise ValueError(f"unknown classical method {name!r}; known: {CLASSICAL}")
    gram = streamed_gram(path, transforms[name])
    if name == "pca":
        return pca_from_gram(gram, settings.pca_components)
    return gram_features(gram)


def pca_from_gram(gram: np.ndarray, n_components: int) -> np.ndarray:
    """Principal component scores of vectors with Gram matrix ``gram`` (rows centred over the
    vectors first, as PCA does): the exact scores up to the sign of each component."""
    n = len(gram)
    centre = np.eye(n) - 1.0 / n
    values, vectors = np.linalg.eigh(centre @ gram @ centre)
    k = max(1, min(n_components, n - 1))
    top = np.argsort(values)[::-1][:k]
    return vectors[:, top] * np.sqrt(np.maximum(values[top], 0.0))
