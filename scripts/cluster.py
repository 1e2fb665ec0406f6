"""Spectral clustering of ion-image embeddings on a kNN graph."""

import logging
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from msicoloc import InputError
from msicoloc.cluster import (
    check_cluster_args,
    knn_spectral_clustering,
    with_chosen_k,
    write_clusters,
)
from msicoloc.embeddings import read_embeddings
from msicoloc.settings import ClusterSettings
from msicoloc.step import run_step

log = logging.getLogger("msicoloc.cluster")


def main(
    embeddings: Path,
    clusters: Path,
    *,
    n_clusters: Path | None = None,
    settings: ClusterSettings,
    seed: int,
    features: str = "features",
    threads: int = 1,
    dataset: str = "?",
) -> None:
    """Write clusters_sc.tsv: spectral clusters of one feature set of embeddings.h5."""
    settings = with_chosen_k(settings, n_clusters)
    mz, table, _ = read_embeddings(embeddings)
    if features not in table:
        raise InputError(embeddings, f"no dataset {features!r}")
    x = table[features]
    try:
        check_cluster_args(x.shape[0], settings.n_clusters, settings.n_neighbors)
    except ValueError as err:
        raise InputError(embeddings, str(err)) from None
    # BLAS (kNN search, eigen solver) would otherwise use every core, not the rule's share.
    with threadpool_limits(limits=max(1, threads)):
        labels = knn_spectral_clustering(x, settings, random_state=seed)
    sizes = np.bincount(labels, minlength=settings.n_clusters)
    log.info("%d clusters of %d ion images; sizes %s", len(sizes), len(labels), sizes.tolist())
    write_clusters(clusters, mz, cluster=labels)


if __name__ == "__main__":
    run_step(main, inputs=["embeddings", "n_clusters"], outputs=["clusters"])
