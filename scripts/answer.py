"""The workflow's answer: the final clusters of co-localized ion images (clusters.tsv)."""

import logging
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from msicoloc import InputError
from msicoloc.cluster import check_cluster_args, read_clusters, with_chosen_k, write_clusters
from msicoloc.evaluate import answer_clusters
from msicoloc.images import read_ion_mz
from msicoloc.names import read_peak_names
from msicoloc.settings import AnswerSettings, ClusterSettings
from msicoloc.step import run_step

log = logging.getLogger("msicoloc.answer")


def main(
    images: Path,
    selflabel_clusters: Path,
    names: Path,
    clusters: Path,
    *,
    n_clusters: Path | None = None,
    settings: AnswerSettings,
    cluster: ClusterSettings,
    smooth_sigma: float,
    seed: int,
    threads: int = 1,
    dataset: str = "?",
) -> None:
    """Write clusters.tsv (mz, cluster, confidence, learned_cluster, name) by answer.method.

    cluster 0 is the largest; confidence is the share of an ion's nearest neighbours in its
    cluster (or the self-labeling classifier's probability); learned_cluster is the learned
    pipeline's cluster, for comparison; ``smooth_sigma`` is compare.smooth_sigma, the blur
    of the smoothed-Pearson answer.
    """
    cluster = with_chosen_k(cluster, n_clusters)
    mz = read_ion_mz(images)
    learned = read_clusters(selflabel_clusters, mz)
    try:
        check_cluster_args(len(mz), cluster.n_clusters, cluster.n_neighbors)
    except ValueError as err:
        raise InputError(images, str(err)) from None
    with threadpool_limits(limits=max(1, threads)):
        labels, confidence = answer_clusters(
            settings.method, images, learned, cluster, smooth_sigma=smooth_sigma, seed=seed
        )
    sizes = np.bincount(labels, minlength=cluster.n_clusters)
    log.info("answer by %s: %d clusters, sizes %s", settings.method, len(sizes), sizes.tolist())
    write_clusters(
        clusters,
        mz,
        cluster=labels,
        confidence=confidence,
        learned_cluster=learned["cluster"].to_numpy(np.int64),
        name=read_peak_names(names, mz),
    )


if __name__ == "__main__":
    run_step(
        main, inputs=["images", "selflabel_clusters", "names", "n_clusters"], outputs=["clusters"]
    )
