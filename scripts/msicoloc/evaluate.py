"""Every method side by side: the same ion images, number of clusters and spectral clustering.

:data:`METHODS` names what is compared, in the order reports show it: the classical scores
the field uses, the dimensionality reductions, the earlier deep baselines, the learned
pipeline of Hu et al. (SimCLR, spectral clustering, self-labeling) and the workflow's answer.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score

from msicoloc.baselines import representation
from msicoloc.cluster import knn_spectral_clustering, spectral_settings

#: Method key -> name shown to users; "answer" is clusters.tsv.
METHODS = {
    "pixel_cosine_sc": "pixel-vector cosine + SC",
    "pearson_sc": "Pearson correlation + SC",
    "spearman_sc": "Spearman rank correlation + SC",
    "metaspace_sc": "METASPACE-style cosine + SC",
    "pca_sc": "PCA + SC",
    "nmf_sc": "NMF + SC",
    "pearson_smooth_sc": "smoothed Pearson + SC",
    "autoencoder_sc": "conv. autoencoder + SC",
    "imagenet_sc": "ImageNet CNN features + SC",
    "untrained_sc": "untrained encoder + SC",
    "simclr_sc": "SimCLR + SC",
    "simclr_selflabel": "SimCLR + SC + self-labeling",
    "answer": "answer (clusters.tsv)",
}

#: Classical methods: representation name in msicoloc.baselines for each method key.
CLASSICAL_METHODS = {
    "pixel_cosine_sc": "pixel_cosine",
    "pearson_sc": "pearson",
    "spearman_sc": "spearman",
    "metaspace_sc": "metaspace",
    "pca_sc": "pca",
    "nmf_sc": "nmf",
    "pearson_smooth_sc": "pearson_smooth",
}

#: Learned embeddings (embeddings.h5 dataset) clustered by each method key.
EMBEDDING_METHODS = {
    "autoencoder_sc": "features_autoencoder",
    "imagenet_sc": "features_imagenet",
    "untrained_sc": "features_untrained",
}

#: Which method key the answer step's ``answer.method`` equals.
ANSWER_SOURCE = {"pearson_smooth": "pearson_smooth_sc", "simclr_selflabel": "simclr_selflabel"}


def cluster_all(
    images: np.ndarray,
    mask: np.ndarray,
    embeddings: dict[str, np.ndarray],
    given: dict[str, np.ndarray],
    *,
    n_clusters: int,
    compare: dict,
    cluster: dict,
    seed: int,
) -> dict[str, np.ndarray]:
    """Labels of every method in :data:`METHODS` order.

    Parameters
    ----------
    images, mask
        Ion images ``(n, H, W)`` and tissue mask.
    embeddings
        Learned features by embeddings.h5 name; a method whose features are absent (ImageNet
        without installed weights) is left out.
    given
        Labels computed by earlier steps: simclr_sc, simclr_selflabel, answer.
    n_clusters
        Number of clusters for every method.
    compare
        The config's compare section (classical settings).
    cluster
        Spectral clustering settings: n_neighbors, affinity, eigen_solver, assign_labels.
    seed
        Seed of the spectral clusterings and of PCA/NMF.
    """
    labels = {}
    for key in METHODS:
        if key in given:
            labels[key] = given[key]
            continue
        if key in CLASSICAL_METHODS:
            features = representation(CLASSICAL_METHODS[key], images, mask, compare, seed)
        elif EMBEDDING_METHODS.get(key) in embeddings:
            features = embeddings[EMBEDDING_METHODS[key]]
        else:
            continue
        labels[key] = knn_spectral_clustering(
            features, n_clusters, random_state=seed, **spectral_settings(cluster)
        )
    return labels


def agreement(labels: dict[str, np.ndarray], reference: str = "answer") -> dict[str, float]:
    """Adjusted Rand index between the ``reference`` clustering and every other method."""
    ref = labels[reference]
    return {k: float(adjusted_rand_score(ref, v)) for k, v in labels.items() if k != reference}


def disagreement(labels: dict[str, np.ndarray], reference: str = "answer") -> np.ndarray:
    """Per ion, how much the other methods disagree with ``reference`` about its partners.

    For ion i and method m: 1 - Jaccard index of i's cluster mates in the reference and in m
    (i itself excluded; two ions alone in their clusters agree). Averaged over the methods:
    0 = every method groups i with the same ions; 1 = none shares any partner with the answer.
    """
    ref = labels[reference]
    same_ref = ref[:, None] == ref[None, :]
    np.fill_diagonal(same_ref, False)
    scores = []
    for key, lab in labels.items():
        if key == reference:
            continue
        same = lab[:, None] == lab[None, :]
        np.fill_diagonal(same, False)
        inter = (same & same_ref).sum(axis=1)
        union = (same | same_ref).sum(axis=1)
        scores.append(1 - np.where(union > 0, inter / np.maximum(union, 1), 1.0))
    return np.mean(scores, axis=0) if scores else np.zeros(len(ref))
