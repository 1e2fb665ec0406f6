"""The comparison of methods: every method clustered alike, agreement and disagreement."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import workflow_settings

from msicoloc.evaluate import (
    CLASSICAL_METHODS,
    METHODS,
    agreement,
    classical_features,
    cluster_all,
    disagreement,
)


def test_agreement_is_ari_against_the_answer():
    answer = np.array([0, 0, 1, 1, 2, 2])
    labels = {"answer": answer, "same": answer.copy(), "renamed": (answer + 1) % 3}
    got = agreement(labels)
    assert set(got) == {"same", "renamed"} and got["same"] == got["renamed"] == 1.0


def test_disagreement_points_at_the_disputed_ion():
    answer = np.array([0, 0, 0, 1, 1, 1])
    other = answer.copy()
    other[2] = 1  # ion 2 moves: it and its partners are disputed
    score = disagreement({"answer": answer, "a": other, "b": answer})
    assert score.argmax() == 2 and score[2] == pytest.approx(0.5)  # one of two methods, J=0
    assert score[5] == pytest.approx((1 - 2 / 3) / 2)  # mates {3,4} vs {2,3,4}
    assert np.all(disagreement({"answer": answer, "b": answer}) == 0)


def test_cluster_all_runs_every_available_method_in_order(tmp_path):
    import h5py

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:16, 0:16]
    patterns = [np.exp(-((yy - c) ** 2 + (xx - c) ** 2) / 12) for c in (3, 8, 13)]
    stack = np.stack([p * (1 + i) + rng.random((16, 16)) * 0.1 for p in patterns for i in range(4)])
    mask = np.ones((16, 16), bool)
    truth = np.repeat([0, 1, 2], 4)
    given = {"simclr_sc": truth, "simclr_selflabel": truth, "answer": truth}
    embeddings = {"features_untrained": rng.random((12, 5))}
    path = tmp_path / "ion_images.h5"
    with h5py.File(path, "w") as f:
        f["images"], f["mask"], f["mz"] = stack.astype(np.float32), mask, np.arange(12.0)
    compare = workflow_settings("compare", smooth_sigma=1.0, pca_components=4, nmf_components=3)
    classical, blurred = classical_features(path, compare, seed=0)
    assert set(classical) == set(CLASSICAL_METHODS) and blurred.shape == (12, 12)
    labels = cluster_all(
        classical,
        embeddings,
        given,
        workflow_settings(
            "cluster", n_clusters=3, n_neighbors=3, affinity="local_scaling", eigen_solver="arpack"
        ),
        seed=0,
    )
    # no autoencoder or ImageNet features given: those methods are left out, the rest in order
    expected = [k for k in METHODS if k not in ("autoencoder_sc", "imagenet_sc")]
    assert list(labels) == expected
    for key in CLASSICAL_METHODS:
        assert len(set(zip(labels[key], truth, strict=True))) == 3, key  # perfect clustering


def test_network_graphml_loads_in_networkx_with_both_scores(tmp_path):
    import networkx as nx
    import pandas as pd

    from msicoloc.evaluate import cluster_members, network_edges, pair_scores, write_graphml

    rng = np.random.default_rng(0)
    base = rng.random((3, 40))
    learned = np.repeat(base, 3, axis=0) + 0.01 * rng.random((9, 40))  # 3 groups of 3
    metaspace = learned + 0.01 * rng.random((9, 40))
    mz = np.linspace(300, 500, 9)
    clusters = pd.DataFrame(
        {"mz": mz, "cluster": np.repeat([0, 1, 2], 3), "confidence": np.linspace(0.5, 1, 9)}
    )
    edges = network_edges(pair_scores(learned, metaspace), 0.999)
    path = tmp_path / "network.graphml"
    write_graphml(path, mz, clusters, edges)
    graph = nx.read_graphml(path)
    assert graph.number_of_nodes() == 9 and not graph.is_directed()
    assert graph.nodes["ion4"]["mz"] == pytest.approx(mz[4], abs=1e-6)
    assert graph.nodes["ion4"]["cluster"] == 1
    assert graph.number_of_edges() == len(edges) == 9  # the three pairs in each group
    for u, v, data in graph.edges(data=True):
        assert graph.nodes[u]["cluster"] == graph.nodes[v]["cluster"]
        assert {"learned_cosine", "metaspace_score"} <= set(data)
        assert max(data["learned_cosine"], data["metaspace_score"]) >= 0.999
    members = cluster_members(clusters, pair_scores(learned, metaspace)["metaspace"])
    assert members["cluster"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert members["rank"].tolist() == [1, 2, 3] * 3
    assert members.groupby("cluster")["confidence"].is_monotonic_decreasing.all()
    assert (members["cluster_size"] == 3).all() and (members["mean_score_to_mates"] > 0.99).all()


def test_colocalization_lists_the_top_partners_by_each_score_with_both():
    import pandas as pd

    from msicoloc.evaluate import colocalization_table, pair_scores

    # ion 0: learned nearest is 1, METASPACE-style best is 2
    learned = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0, 1.0]])
    metaspace = np.array([[1, 0, 0], [0, 1, 0], [0.9, 0.1, 0], [0, 0, 1.0]])
    mz = np.array([100.0, 200.0, 300.0, 400.0])
    answer = pd.DataFrame({"mz": mz, "cluster": [0, 0, 1, 1], "name": ["a", "b", "c", "d"]})
    table = colocalization_table(mz, pair_scores(learned, metaspace), answer, top_n=1)
    first = table[table.mz == 100.0]
    assert first.neighbour_mz.tolist() == [200.0, 300.0]  # learned rank order
    assert first.learned_rank.tolist() == [1, 2] and first.metaspace_rank.tolist() == [2, 1]
    np.testing.assert_allclose(first.learned, [np.cos(np.arctan2(0.1, 0.9)), 0.0], atol=1e-12)
    np.testing.assert_allclose(first.metaspace, [0.0, np.cos(np.arctan2(0.1, 0.9))], atol=1e-12)
    assert first.same_cluster.tolist() == [True, False]
    assert first.neighbour_name.tolist() == ["b", "c"]
    assert (table.mz != table.neighbour_mz).all()
