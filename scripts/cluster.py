"""Spectral clustering of ion-image embeddings on a kNN graph."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import logging

import h5py
import numpy as np
from threadpoolctl import threadpool_limits

from msicoloc import InputError
from msicoloc.cluster import check_cluster_args, knn_spectral_clustering
from msicoloc.step import atomic_output, run_step

log = logging.getLogger("msicoloc.cluster")


def main(
    embeddings: Path,
    clusters: Path,
    *,
    n_clusters: int = 10,
    n_neighbors: int = 10,
    affinity: str = "local_scaling",
    seed: int = 0,
    features: str = "features",
    eigen_solver: str = "auto",
    assign_labels: str = "kmeans",
    threads: int = 1,
    dataset: str = "?",
) -> None:
    """Cluster ion images by spectral clustering of their encoder features.

    Parameters
    ----------
    embeddings
        HDF5 from the embedding step (features, features_untrained, mz).
    clusters
        Output TSV with columns mz and cluster (0 = largest cluster), in the images' order.
    n_clusters
        Number of clusters.
    n_neighbors
        Neighbours per ion image in the kNN graph (clipped to the number of images - 1).
    affinity
        Edge weights: local_scaling (self-tuning: close pairs weigh more, each image's
        distance to its 7th neighbour sets its scale) or connectivity (0/1 kNN graph).
    seed
        Seed of the eigen solver and the label discretisation.
    features
        Which features to cluster: features (trained encoder) or features_untrained.
    eigen_solver
        auto (amg if pyamg is installed, else lobpcg), amg, lobpcg or arpack (slow on
        large data sets).
    assign_labels
        kmeans, discretize or cluster_qr: how the spectral embedding becomes labels.
    threads
        CPU threads for the kNN search and the eigen solver.
    dataset
        Data set id used in messages.
    """
    with h5py.File(embeddings, "r") as f:
        if features not in f or "mz" not in f:
            raise InputError(embeddings, f"no dataset {features!r} or 'mz'")
        x = np.asarray(f[features][()], dtype=np.float64)
        mz = np.asarray(f["mz"][()], dtype=np.float64)
    try:
        check_cluster_args(x.shape[0], n_clusters, n_neighbors)
    except ValueError as err:
        raise InputError(embeddings, str(err)) from None
    # BLAS (kNN search, eigen solver) would otherwise use every core, not the rule's share.
    with threadpool_limits(limits=max(1, threads)):
        labels = knn_spectral_clustering(
            x,
            n_clusters,
            n_neighbors=n_neighbors,
            affinity=affinity,
            random_state=seed,
            eigen_solver=eigen_solver,
            assign_labels=assign_labels,
        )
    sizes = np.bincount(labels, minlength=n_clusters)
    log.info("%d clusters of %d ion images; sizes %s", n_clusters, len(labels), sizes.tolist())
    with atomic_output(clusters) as tmp:
        write_labels(tmp, mz, labels)


def write_labels(path: Path, mz: np.ndarray, labels: np.ndarray) -> None:
    """Write a two-column TSV (mz with 6 decimals, integer cluster)."""
    rows = [f"{m:.6f}\t{int(c)}" for m, c in zip(mz, labels, strict=True)]
    path.write_text("mz\tcluster\n" + "".join(r + "\n" for r in rows))


if __name__ == "__main__":
    run_step(main, inputs=["embeddings"], outputs=["clusters"])
