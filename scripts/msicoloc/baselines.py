"""Classical co-localization features, for the baselines next to the learned features.

Each function turns an ion-image stack into one feature vector per image whose cosine
similarity is the classical co-localization score; clustering these with the same kNN
spectral clustering as the learned features makes the comparison like for like.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def pixel_vectors(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The tissue pixels of every image as one vector: cosine = pixel-vector cosine."""
    return images[:, mask].astype(np.float32)


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
