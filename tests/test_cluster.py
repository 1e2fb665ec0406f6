"""kNN spectral clustering and label ordering."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pytest
from conftest import workflow_settings
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from msicoloc.cluster import (
    check_cluster_args,
    fill_empty_clusters,
    knn_graph,
    knn_spectral_clustering,
    relabel_by_size,
)

SOLVERS = ["lobpcg", "arpack"] + (["amg"] if importlib.util.find_spec("pyamg") else [])


def blobs(n=150, k=4, seed=0):
    return make_blobs(
        n, n_features=20, centers=k, cluster_std=1.0, center_box=(-10, 10), random_state=seed
    )


def spectral(x, n_clusters, random_state=0, **changes):
    """Spectral clustering with the workflow's cluster settings and ``changes``."""
    settings = workflow_settings("cluster", n_clusters=n_clusters, **changes)
    return knn_spectral_clustering(x, settings, random_state=random_state)


@pytest.mark.parametrize("solver", SOLVERS)
def test_recovers_separated_blobs(solver):
    x, y = blobs()
    labels = spectral(x, 4, eigen_solver=solver, random_state=0)
    assert adjusted_rand_score(y, labels) == 1.0
    assert set(labels.tolist()) == {0, 1, 2, 3}


def test_cosine_on_normalised_features_ignores_scale():
    x, _ = blobs()
    scale = np.random.default_rng(0).uniform(0.1, 10, (len(x), 1))
    shifted = x + 30  # make directions, not only positions, differ by blob
    a = spectral(shifted, 4, random_state=0)
    b = spectral(shifted * scale, 4, random_state=0)
    assert np.array_equal(a, b)


def test_reproducible_with_a_seed():
    x, _ = make_blobs(300, n_features=10, centers=6, cluster_std=3.0, random_state=1)
    runs = [spectral(x, 6, n_neighbors=8, random_state=3) for _ in range(2)]
    assert np.array_equal(runs[0], runs[1])
    sizes = np.bincount(runs[0])
    assert np.all(np.diff(sizes) <= 0)  # cluster 0 is the largest


def test_graph_is_symmetric_without_self_loops():
    x, _ = blobs(n=40)
    g = knn_graph(x, 5, affinity="connectivity")
    assert (g != g.T).nnz == 0
    assert g.diagonal().sum() == 0
    assert set(np.unique(g.data).tolist()) <= {0.5, 1.0}


def test_local_scaling_weights():
    """w_ij = exp(-d_ij^2 / (s_i s_j)), s_i = distance to i's 3rd neighbour; max-symmetric."""
    x, _ = blobs(n=30)
    k, m = 5, 3
    g = knn_graph(x, k, affinity="local_scaling", scale_neighbor=m).toarray()
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    d = 1 - u @ u.T
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1)
    scale = np.take_along_axis(d, order[:, m - 1 : m], axis=1)[:, 0]
    ref = np.zeros_like(d)
    for i in range(len(x)):
        for j in order[i, :k]:
            ref[i, j] = np.exp(-(d[i, j] ** 2) / (scale[i] * scale[j]))
    ref = np.maximum(ref, ref.T)
    np.testing.assert_allclose(g, ref, rtol=1e-6, atol=1e-9)
    assert np.all(np.diag(g) == 0) and g.max() <= 1


def test_local_scaling_survives_duplicate_features():
    x = np.repeat(blobs(n=12)[0], 3, axis=0)  # every point three times: distances 0
    g = knn_graph(x, 4, affinity="local_scaling")
    assert np.isfinite(g.data).all() and g.data.max() == 1.0
    with pytest.raises(ValueError, match="affinity"):
        knn_graph(x, 4, affinity="gaussian")


def test_bad_sizes(caplog):
    x, _ = blobs(n=10)
    with pytest.raises(ValueError, match="only 10 ion images for n_clusters=11"):
        spectral(x, 11)
    with pytest.raises(ValueError, match="at least 2"):
        spectral(x, 1)
    with caplog.at_level(logging.WARNING):
        assert check_cluster_args(10, 3, 10) == 9
    assert "n_neighbors=10" in caplog.text
    assert len(spectral(x, 3, n_neighbors=50)) == 10
    with pytest.raises(ValueError, match="NaN"):
        spectral(np.full((5, 3), np.nan), 2)


def test_relabel_by_size():
    assert relabel_by_size(np.array([2, 2, 0, 1, 1, 1])).tolist() == [1, 1, 2, 0, 0, 0]
    # ties: the cluster seen first gets the smaller id
    assert relabel_by_size(np.array([5, 3, 3, 5, 9])).tolist() == [0, 1, 1, 0, 2]
    assert relabel_by_size(np.array([7])).tolist() == [0]


# --- label assignment, neighbourhood agreement ---------------------------------------------

from msicoloc.cluster import knn_agreement  # noqa: E402


@pytest.mark.parametrize("assign", ["kmeans", "discretize", "cluster_qr"])
def test_every_label_assignment_recovers_blobs(assign):
    x, y = blobs()
    labels = spectral(x, 4, random_state=0, assign_labels=assign)
    assert adjusted_rand_score(y, labels) > 0.95
    with pytest.raises(ValueError, match="assign_labels"):
        spectral(x, 4, assign_labels="nope")


def test_knn_agreement_is_high_inside_and_low_across_clusters():
    x, y = blobs()
    agree = knn_agreement(x, y, 5)
    assert agree.shape == (len(y),) and agree.min() >= 0 and agree.max() <= 1
    assert agree.mean() > 0.95
    shuffled = np.random.default_rng(0).permutation(y)
    assert knn_agreement(x, shuffled, 5).mean() < 0.5


def test_missing_clusters_are_filled_by_splitting_the_largest(caplog):
    """K requested means K non-empty (bug: 15 asked, 10 or 5 non-empty came back)."""
    rng = np.random.default_rng(0)
    x = np.concatenate([c + rng.normal(size=(20, 5)) for c in rng.normal(size=(3, 5)) * 20])
    labels = np.repeat([0, 2, 5], 20)  # ids 1, 3 and 4 empty
    with caplog.at_level(logging.WARNING):
        got = fill_empty_clusters(x, labels, 6, random_state=0)
    assert sorted(np.bincount(got).tolist(), reverse=True) == np.bincount(got).tolist()
    assert len(np.bincount(got)) == 6 and np.bincount(got).min() > 0
    assert "gave 3 non-empty clusters of the 6 requested" in caplog.text
    # every new cluster lies inside one of the old ones
    for k in range(6):
        assert len(set(labels[got == k])) == 1
    # identical ions cannot be split: fewer clusters, and the log says why
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        few = fill_empty_clusters(np.ones((6, 3)), np.zeros(6, int), 3, random_state=0)
    assert few.max() == 0 and "identical features" in caplog.text


def test_disconnected_graph_still_gives_k_nonempty_clusters():
    """Tight groups of near-identical ions far apart (a kNN graph in pieces), more clusters
    asked than groups: every requested cluster has members."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(10, 30)) * 10
    x = np.concatenate([c + rng.normal(size=(60, 30)) * 1e-9 for c in centres])
    x = np.concatenate([x, rng.normal(size=(3, 30)) * 50])  # three isolated ions
    for solver in ("amg", "lobpcg"):
        labels = spectral(x, 15, eigen_solver=solver)
        assert np.bincount(labels, minlength=15).min() > 0, solver


def test_solver_warnings_are_logged_once_in_one_line(caplog, monkeypatch):
    """lobpcg warns in a dozen lines, again at every restart: the step's log gets the first
    line of each warning, once."""
    import warnings

    from msicoloc import cluster

    class Noisy(cluster.SpectralClustering):
        def fit_predict(self, graph):
            for _ in range(3):
                warnings.warn(
                    "Exited at iteration 20 with accuracies \n[1e-10]\nnot reaching", stacklevel=1
                )
                warnings.warn("Graph is not fully connected", stacklevel=1)
            return super().fit_predict(graph)

    monkeypatch.setattr(cluster, "SpectralClustering", Noisy)
    x, _ = blobs()
    with caplog.at_level(logging.INFO, logger="msicoloc.cluster"):
        spectral(x, 4)
    lines = [r.getMessage() for r in caplog.records if "spectral clustering" in r.getMessage()]
    assert lines.count("spectral clustering: Exited at iteration 20 with accuracies") == 1
    assert lines.count("spectral clustering: Graph is not fully connected") == 1
    assert len(lines) == len(set(lines))


def _pattern_ions(rng, k: int, n_ions: int = 120, pixels: int = 900, noise: float = 1.0):
    """The correlation matrix of ion vectors (each a random scale of one of ``k`` random
    patterns plus pixel noise), and that of the same ions with signs flipped at random."""
    patterns = rng.normal(size=(k, pixels))
    x = patterns[np.arange(n_ions) % k] * rng.uniform(0.5, 2.0, (n_ions, 1))
    x = x + noise * rng.normal(size=x.shape)

    deviations = x - x.mean(axis=1, keepdims=True)
    flipped = deviations * rng.choice([-1.0, 1.0], size=x.shape)
    return np.corrcoef(x), np.corrcoef(flipped)


def test_parallel_analysis_counts_the_patterns_ions_share():
    """n_clusters: auto gives K for K shared patterns (K = 3, 5, 8), even where each ion is
    mostly noise; pure noise gives the low end of auto_range; too few ions is an error."""
    from msicoloc.cluster import parallel_analysis_n_clusters

    rng = np.random.default_rng(0)
    for k in (3, 5, 8):
        for noise in (0.5, 3.0):  # at 3, the pattern is a tenth of an ion's variance
            gram, null = _pattern_ions(rng, k, noise=noise)
            got, values, null_values = parallel_analysis_n_clusters(gram, null, (2, 12))
            assert got == k, (k, noise)
            assert len(values) == len(null_values) == 13
            assert values[k - 1] > null_values[k - 1] and values[k] <= null_values[k]
    noise_only, null = _pattern_ions(rng, 1, noise=1e6)
    assert parallel_analysis_n_clusters(noise_only, null, (2, 12))[0] == 2
    gram, null = _pattern_ions(rng, 8)
    assert parallel_analysis_n_clusters(gram, null, (2, 5))[0] == 5  # clipped to the range
    with pytest.raises(ValueError, match="only 4 ion images"):
        parallel_analysis_n_clusters(gram[:4, :4], null[:4, :4], (5, 12))
