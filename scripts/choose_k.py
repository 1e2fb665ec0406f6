"""The number of clusters of a data set: the sheet's or config's, or chosen from the data."""

import logging
from pathlib import Path

from threadpoolctl import threadpool_limits

from msicoloc import InputError
from msicoloc.baselines import classical_grams, correlation_from_gram
from msicoloc.cluster import parallel_analysis_n_clusters, write_n_clusters
from msicoloc.images import read_ion_mz
from msicoloc.settings import ClusterSettings
from msicoloc.step import run_step

log = logging.getLogger("choose_k")


def main(
    images: Path,
    n_clusters: Path,
    *,
    cluster: ClusterSettings,
    seed: int,
    smooth_sigma: float | None = None,
    threads: int = 1,
    dataset: str = "cli",
) -> None:
    """Write n_clusters.json: a given number as it is; with ``auto``, the number of spatial
    patterns of the answer's representation (smoothed Pearson) that stand above the same
    images with nothing co-localized (parallel analysis), within cluster.auto_range;
    ``smooth_sigma`` is the answer's (compare.smooth_sigma), needed with ``auto`` only."""
    if cluster.n_clusters != "auto":
        write_n_clusters(n_clusters, int(cluster.n_clusters), "given")
        return
    if smooth_sigma is None:
        raise InputError(images, "n_clusters auto needs the smoothing (--smooth-sigma)")
    n_ions = len(read_ion_mz(images))
    with threadpool_limits(limits=max(1, threads)):
        grams = classical_grams(
            images,
            ["pearson_smooth", "pearson_smooth_null"],
            smooth_sigma=smooth_sigma,
            null_seed=seed,
        )
        try:
            k, values, null = parallel_analysis_n_clusters(
                correlation_from_gram(grams["pearson_smooth"]),
                correlation_from_gram(grams["pearson_smooth_null"]),
                cluster.auto_range,
            )
        except ValueError as err:
            raise InputError(images, str(err)) from None
    log.info(
        "n_clusters auto: %d of %d ion images (patterns above the null in %s; eigenvalues %s;"
        " null %s)",
        k,
        n_ions,
        list(cluster.auto_range),
        ", ".join(f"{v:.2f}" for v in values[: k + 2]),
        ", ".join(f"{v:.2f}" for v in null[: k + 2]),
    )
    write_n_clusters(n_clusters, k, "parallel_analysis", values, null)


if __name__ == "__main__":
    run_step(main, inputs=["images"], outputs=["n_clusters"])
