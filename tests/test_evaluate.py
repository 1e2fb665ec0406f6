"""The comparison of methods: every method clustered alike, agreement and disagreement."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import workflow_settings

from msicoloc.evaluate import (
    CLASSICAL_METHODS,
    METHODS,
    agreement,
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
    labels = cluster_all(
        path,
        embeddings,
        given,
        workflow_settings(
            "cluster", n_clusters=3, n_neighbors=3, affinity="local_scaling", eigen_solver="arpack"
        ),
        workflow_settings("compare", smooth_sigma=1.0, pca_components=4, nmf_components=3),
        seed=0,
    )
    # no autoencoder or ImageNet features given: those methods are left out, the rest in order
    expected = [k for k in METHODS if k not in ("autoencoder_sc", "imagenet_sc")]
    assert list(labels) == expected
    for key in CLASSICAL_METHODS:
        assert len(set(zip(labels[key], truth, strict=True))) == 3, key  # perfect clustering
