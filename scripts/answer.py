"""The workflow's answer: the final clusters of co-localized ion images (clusters.tsv)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import logging

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from msicoloc import InputError
from msicoloc.baselines import representation
from msicoloc.cluster import (
    check_cluster_args,
    knn_agreement,
    knn_spectral_clustering,
    read_cluster_labels,
    spectral_settings,
)
from msicoloc.images import read_ion_images
from msicoloc.step import atomic_output, run_step

log = logging.getLogger("msicoloc.answer")

ANSWER_METHODS = ("pearson_smooth", "simclr_selflabel")


def main(
    images: Path,
    selflabel_clusters: Path,
    clusters: Path,
    *,
    compare: dict,
    cluster: dict,
    method: str = "pearson_smooth",
    n_clusters: int = 10,
    seed: int = 0,
    threads: int = 1,
    dataset: str = "?",
) -> None:
    """Write the final clusters: the method that measured best across the quality suite.

    Parameters
    ----------
    images
        ion_images.h5 (images, mz, mask).
    selflabel_clusters
        clusters_selflabel.tsv: the learned pipeline's clusters (SimCLR + SC + self-labeling).
    clusters
        Output TSV sorted by m/z: mz, cluster (0 = largest), confidence (share of the ion's
        nearest neighbours in its cluster, or the self-labeling classifier's probability),
        learned_cluster (the learned pipeline's cluster, for comparison).
    compare
        The config's compare section (smoothing sigma of pearson_smooth).
    cluster
        The config's cluster section (kNN graph and spectral clustering settings).
    method
        pearson_smooth (spectral clustering of smoothed Pearson correlation) or
        simclr_selflabel (the learned pipeline's clusters, as in Hu et al.).
    n_clusters
        Number of clusters.
    seed
        Seed of the spectral clustering.
    threads
        CPU threads (kNN search, eigen solver).
    dataset
        Data set id, for messages.
    """
    if method not in ANSWER_METHODS:
        raise InputError(f"answer.method={method}", f"must be one of {list(ANSWER_METHODS)}")
    stack, mz, mask = read_ion_images(images)
    learned = read_cluster_labels(selflabel_clusters, mz)
    settings = spectral_settings(cluster)
    try:
        check_cluster_args(len(mz), n_clusters, settings["n_neighbors"])
    except ValueError as err:
        raise InputError(images, str(err)) from None
    if method == "pearson_smooth":
        with threadpool_limits(limits=max(1, threads)):
            features = representation("pearson_smooth", stack, mask, compare, seed)
            labels = knn_spectral_clustering(features, n_clusters, random_state=seed, **settings)
            confidence = knn_agreement(features, labels, settings["n_neighbors"])
    else:
        labels = learned
        # same rows as read_cluster_labels checked above
        confidence = pd.read_csv(selflabel_clusters, sep="\t")["confidence"].to_numpy(float)
    sizes = np.bincount(labels, minlength=n_clusters)
    log.info("answer by %s: %d clusters, sizes %s", method, n_clusters, sizes.tolist())
    order = np.argsort(mz, kind="stable")
    rows = "".join(f"{mz[i]:.6f}\t{labels[i]}\t{confidence[i]:.4f}\t{learned[i]}\n" for i in order)
    with atomic_output(clusters) as tmp:
        tmp.write_text("mz\tcluster\tconfidence\tlearned_cluster\n" + rows)


if __name__ == "__main__":
    run_step(main, inputs=["images", "selflabel_clusters"], outputs=["clusters"])
