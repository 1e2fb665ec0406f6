"""Spectral clustering of ion-image features on a k-nearest-neighbour graph."""

from __future__ import annotations

import importlib.util
import logging
import warnings

import numpy as np
import pandas as pd
from sklearn.cluster import SpectralClustering
from sklearn.neighbors import kneighbors_graph

from msicoloc import InputError
from msicoloc.images import check_ion_mz
from msicoloc.settings import ClusterSettings

log = logging.getLogger(__name__)


def check_cluster_args(n_samples: int, n_clusters: int, n_neighbors: int) -> int:
    """Validate clustering sizes; return ``n_neighbors`` clipped to ``n_samples - 1``.

    Parameters
    ----------
    n_samples
        Number of things to cluster (ion images).
    n_clusters
        Requested number of clusters.
    n_neighbors
        Requested neighbours per node of the kNN graph.

    Raises
    ------
    ValueError
        With a one-line message a user can act on.
    """
    if n_clusters < 2:
        raise ValueError(f"n_clusters must be at least 2, got {n_clusters}")
    if n_samples < n_clusters:
        raise ValueError(
            f"only {n_samples} ion images for n_clusters={n_clusters}: lower n_clusters"
        )
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be at least 1, got {n_neighbors}")
    if n_neighbors >= n_samples:
        log.warning(
            "n_neighbors=%d >= %d ion images: using %d", n_neighbors, n_samples, n_samples - 1
        )
        n_neighbors = n_samples - 1
    return n_neighbors


def default_eigen_solver() -> str:
    """``"amg"`` when pyamg is installed, else ``"lobpcg"``: both are fast on large graphs.

    ARPACK (sklearn's default) was measured ~40x slower at 20,000 points.
    """
    return "amg" if importlib.util.find_spec("pyamg") is not None else "lobpcg"


AFFINITIES = ("local_scaling", "connectivity")
ASSIGN_LABELS = ("kmeans", "discretize", "cluster_qr")


def knn_graph(
    features: np.ndarray,
    n_neighbors: int = 10,
    *,
    normalize: bool = True,
    affinity: str = "local_scaling",
    scale_neighbor: int = 7,
):
    """Symmetric kNN graph of cosine distances, as a sparse affinity matrix.

    Parameters
    ----------
    features
        ``(n, d)`` feature vectors.
    n_neighbors
        Neighbours per node before symmetrisation.
    normalize
        L2-normalise the rows first (cosine neighbours are then also Euclidean neighbours).
    affinity
        ``"local_scaling"``: edge weight ``exp(-d_ij^2 / (s_i s_j))`` with ``s_i`` the distance
        from ``i`` to its ``scale_neighbor``-th neighbour (self-tuning spectral clustering,
        Zelnik-Manor & Perona 2004), symmetrised by the maximum; close pairs weigh more
        than far ones, and dense and sparse clusters are judged on their own scale.
        ``"connectivity"``: weight 1 for mutual neighbours, 0.5 for one-sided ones.
    scale_neighbor
        Which neighbour sets the local scale (clipped to ``n_neighbors``).
    """
    if affinity not in AFFINITIES:
        raise ValueError(f"affinity must be one of {AFFINITIES}, got {affinity!r}")
    x = np.asarray(features, dtype=np.float64)
    if normalize:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if affinity == "connectivity":
        graph = kneighbors_graph(
            x, n_neighbors, mode="connectivity", metric="cosine", include_self=False
        )
        return 0.5 * (graph + graph.T)
    graph = kneighbors_graph(x, n_neighbors, mode="distance", metric="cosine", include_self=False)
    graph = graph.tocsr()
    graph.sort_indices()
    # rows hold exactly n_neighbors distances; sorted per row they give each point's scale
    dist = graph.data.reshape(len(x), n_neighbors)
    scale = np.sort(dist, axis=1)[:, min(scale_neighbor, n_neighbors) - 1]
    rows = np.repeat(np.arange(len(x)), n_neighbors)
    denom = np.maximum(scale[rows] * scale[graph.indices], 1e-12)  # duplicates: d = 0
    graph.data = np.exp(-(np.maximum(graph.data, 0.0) ** 2) / denom)
    return graph.maximum(graph.T).tocsr()


def knn_spectral_clustering(
    features: np.ndarray,
    settings: ClusterSettings,
    *,
    random_state: int,
    normalize: bool = True,
) -> np.ndarray:
    """Cluster feature vectors by spectral clustering of their kNN graph.

    Parameters
    ----------
    features
        ``(n, d)`` feature vectors, one per ion image.
    settings
        The ``cluster`` section of the config with the data set's ``n_clusters``: the
        neighbours per node of the kNN graph (clipped to n - 1 with a warning), its edge
        weights (``local_scaling`` or ``connectivity``, see :func:`knn_graph`), the eigen
        solver (``auto`` picks :func:`default_eigen_solver`) and how the spectral embedding
        becomes labels (``kmeans``: k-means with 10 restarts, Ng-Jordan-Weiss;
        ``discretize``: Yu-Shi; ``cluster_qr``: deterministic).
    random_state
        Seed of the eigen solver and of the label discretisation.
    normalize
        L2-normalise the features before the cosine kNN search.

    Returns
    -------
    numpy.ndarray
        int64 labels in ``0..n_clusters-1``, cluster 0 the largest (see :func:`relabel_by_size`).
    """
    x = np.asarray(features)
    if x.ndim != 2:
        raise ValueError(f"features must be (n, d), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values")
    n_clusters, assign_labels = settings.n_clusters, settings.assign_labels
    eigen_solver, affinity = settings.eigen_solver, settings.affinity
    n_neighbors = check_cluster_args(x.shape[0], n_clusters, settings.n_neighbors)
    if assign_labels not in ASSIGN_LABELS:
        raise ValueError(f"assign_labels must be one of {ASSIGN_LABELS}, got {assign_labels!r}")
    graph = knn_graph(x, n_neighbors, normalize=normalize, affinity=affinity)
    model = SpectralClustering(
        n_clusters=n_clusters,
        affinity="precomputed",
        assign_labels=assign_labels,
        eigen_solver=default_eigen_solver() if eigen_solver in (None, "auto") else eigen_solver,
        random_state=random_state,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = model.fit_predict(graph)
    # expected and harmless: "Graph is not fully connected" for very distinct groups of ions,
    # and lobpcg stopping just short of its tolerance (the embedding only feeds k-means); their
    # first lines, once each, keep the step's log readable (lobpcg's run to 12 lines each)
    for first_line in dict.fromkeys(str(w.message).strip().split("\n")[0].strip() for w in caught):
        log.info("spectral clustering: %s", first_line)
    return fill_empty_clusters(x, labels, n_clusters, random_state)


def fill_empty_clusters(
    features: np.ndarray, labels: np.ndarray, n_clusters: int, random_state: int
) -> np.ndarray:
    """``labels`` with exactly ``n_clusters`` non-empty clusters, relabelled by size.

    Spectral clustering can return fewer non-empty clusters than asked, e.g. when the kNN
    graph falls apart into components of (nearly) identical ions and k-means on the
    spectral embedding then sees fewer distinct points than clusters. A user who asks for K
    clusters gets K: while one is missing, the largest cluster that has distinct members is
    split in two by 2-means on its (L2-normalised) features, with a warning in the log.
    Only when no cluster has two distinct members (fewer distinct ions than K) are fewer
    returned, with a warning that says so.
    """
    from sklearn.cluster import KMeans

    labels = relabel_by_size(labels)
    found = int(labels.max()) + 1
    if found >= n_clusters:
        return labels
    x = np.asarray(features, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    while labels.max() + 1 < n_clusters:
        for k in np.argsort(-np.bincount(labels), kind="stable"):
            members = np.flatnonzero(labels == k)
            if len(np.unique(x[members], axis=0)) >= 2:
                break
        else:
            log.warning(
                "only %d of the %d requested clusters are non-empty: the other ions have "
                "identical features",
                labels.max() + 1,
                n_clusters,
            )
            return labels
        km = KMeans(2, n_init=10, random_state=random_state).fit(x[members])
        labels[members[km.labels_ == 1]] = labels.max() + 1
        labels = relabel_by_size(labels)
    log.warning(
        "spectral clustering gave %d non-empty clusters of the %d requested (likely a kNN graph "
        "of disconnected parts); the largest were split to give %d",
        found,
        n_clusters,
        n_clusters,
    )
    return labels


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber labels so that 0 is the largest cluster, 1 the next, ... (ties: first seen).

    Parameters
    ----------
    labels
        Integer labels of any values.
    """
    labels = np.asarray(labels)
    values, first, counts = np.unique(labels, return_index=True, return_counts=True)
    # Sort by decreasing size, then by first occurrence, so the result is order-stable.
    order = np.lexsort((first, -counts))
    new = np.empty(len(values), dtype=np.int64)
    new[order] = np.arange(len(values))
    return new[np.searchsorted(values, labels)]


def parallel_analysis_n_clusters(
    correlation: np.ndarray, null_correlation: np.ndarray, auto_range: tuple[int, int]
) -> tuple[int, np.ndarray, np.ndarray]:
    """The number of clusters the data suggest: the number of spatial patterns that stand
    above noise (Horn's parallel analysis, 1965).

    ``correlation`` is the correlation matrix of the ion images as the answer sees them
    (smoothed Pearson), ``null_correlation`` that of the same images with nothing
    co-localized (every pixel's deviation given a random sign,
    :func:`msicoloc.baselines.classical_grams`), so with the same noise, smoothing, number of
    pixels and ions. K groups of ions that share a spatial pattern within a group give K
    eigenvalues of the correlation matrix above the null's eigenvalues of the same rank
    (K - 1 where the patterns tile the tissue: centring removes their sum); the rest lie
    among the null's. K is the number of leading eigenvalues above
    the null's, clipped to ``auto_range`` and to fewer than the number of ions.

    Unlike the eigengap of a kNN graph, this counts patterns that ions share however noisy
    the ions are: measured on the quality suite, see ``bench/auto_k.py``.

    Returns K, and the largest ``auto_range[1] + 1`` eigenvalues of the data and of the null
    (descending; for the report's plot).
    """
    n = len(correlation)
    lo, hi = auto_range
    hi = min(hi, n - 1)
    if hi < lo:
        raise ValueError(f"only {n} ion images: cannot choose between {lo} and {hi} clusters")
    values = np.linalg.eigvalsh(correlation)[::-1][: hi + 1]
    null = np.linalg.eigvalsh(null_correlation)[::-1][: hi + 1]
    above = values > null
    found = len(above) if above.all() else int(np.argmin(above))
    return int(np.clip(found, lo, hi)), values, null


def write_n_clusters(
    path, n_clusters: int, chosen_by: str, eigenvalues=None, null_eigenvalues=None
) -> None:
    """Write n_clusters.json: the number of clusters every method uses, and how it came
    (with the eigenvalues of the data and of the null it was chosen from)."""
    import json

    from msicoloc.step import atomic_output

    record = {"n_clusters": int(n_clusters), "chosen_by": chosen_by}
    if eigenvalues is not None:
        record["eigenvalues"] = [round(float(v), 6) for v in eigenvalues]
    if null_eigenvalues is not None:
        record["null_eigenvalues"] = [round(float(v), 6) for v in null_eigenvalues]
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")


def read_n_clusters(path) -> dict:
    """The record of :func:`write_n_clusters`."""
    import json
    from pathlib import Path

    return json.loads(Path(path).read_text())


def with_chosen_k(settings: ClusterSettings, n_clusters_file) -> ClusterSettings:
    """``settings`` with the number of clusters of n_clusters.json (given, or chosen); without
    a file (a step run by hand), the settings' own number, which must then be one."""
    import dataclasses

    if n_clusters_file is None:
        if settings.n_clusters == "auto":
            raise InputError("n_clusters", "auto needs the n_clusters.json of the choose_k step")
        return settings
    k = read_n_clusters(n_clusters_file)["n_clusters"]
    return dataclasses.replace(settings, n_clusters=k)


def write_clusters(path, mz: np.ndarray, **columns: np.ndarray) -> None:
    """Write a cluster table atomically: ``mz`` then ``columns``, one row per ion image.

    This is the one writer of ``clusters_sc.tsv``, ``clusters_selflabel.tsv`` and
    ``clusters.tsv``. Rows are in ascending m/z, which is also the ion images' order
    (peaks.tsv is sorted); m/z has 6 decimals, integer columns are ids, text columns (names)
    as they are, other columns 4 decimals.
    """
    from msicoloc.step import atomic_output

    mz = np.asarray(mz, dtype=float)
    cells = [[f"{m:.6f}" for m in mz]]
    for values in columns.values():
        values = np.asarray(values)
        if values.dtype == object or values.dtype.kind in "US":  # text, e.g. molecule names
            cells.append([str(v) for v in values])
            continue
        fmt = "{:d}" if np.issubdtype(values.dtype, np.integer) else "{:.4f}"
        cells.append([fmt.format(v.item()) for v in values])
    order = np.argsort(mz, kind="stable")
    rows = ["\t".join(col[i] for col in cells) + "\n" for i in order]
    with atomic_output(path) as tmp:
        tmp.write_text("\t".join(["mz", *columns]) + "\n" + "".join(rows))


def read_clusters(path, mz: np.ndarray) -> pd.DataFrame:
    """Read a table of :func:`write_clusters`, checked against the ion images' m/z.

    Parameters
    ----------
    path
        TSV with a column ``mz`` and at least ``cluster``.
    mz
        m/z of the ion images, in their (ascending) order.
    """
    try:
        # names may be empty or "NA"-like words: text stays text
        table = pd.read_csv(path, sep="\t", dtype={"name": str}, keep_default_na=False)
    except Exception as err:
        raise InputError(path, f"cannot read TSV ({type(err).__name__})") from None
    if not {"mz", "cluster"} <= set(table.columns):
        raise InputError(path, "needs columns mz and cluster")
    check_ion_mz(path, table["mz"], mz)
    if table["cluster"].min() < 0:
        raise InputError(path, "negative cluster ids")
    return table


def read_cluster_labels(path, mz: np.ndarray) -> np.ndarray:
    """The ``cluster`` column of :func:`read_clusters`, as int64."""
    return np.array(read_clusters(path, mz)["cluster"], dtype=np.int64)


def knn_agreement(features: np.ndarray, labels: np.ndarray, n_neighbors: int) -> np.ndarray:
    """Share of each item's ``n_neighbors`` nearest neighbours (cosine) in its own cluster.

    A confidence that needs no classifier: 1 where the neighbourhood agrees with the cluster,
    low for items on a border between clusters.
    """
    x = np.asarray(features, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    k = max(1, min(n_neighbors, len(x) - 1))
    graph = kneighbors_graph(x, k, mode="connectivity", include_self=False).tocsr()
    neighbours = graph.indices.reshape(len(x), k)
    labels = np.asarray(labels)
    return (labels[neighbours] == labels[:, None]).mean(axis=1)
