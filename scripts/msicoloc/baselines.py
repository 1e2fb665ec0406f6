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
"""

from __future__ import annotations

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
