"""Evaluate every method side by side: annotations, isotopes, agreement with the answer."""

import logging
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from msicoloc import InputError
from msicoloc import evaluate as ev
from msicoloc.cluster import (
    check_cluster_args,
    read_cluster_labels,
    read_clusters,
    with_chosen_k,
)
from msicoloc.embeddings import read_embeddings
from msicoloc.images import read_ion_mz, read_mask
from msicoloc.metrics import read_annotations
from msicoloc.settings import AnswerSettings, ClusterSettings, CompareSettings, EvaluateSettings
from msicoloc.step import atomic_output, run_step

log = logging.getLogger("evaluate")

INPUTS = ["images", "embeddings", "compare_embeddings", "sc_clusters", "n_clusters"]
INPUTS += ["selflabel_clusters", "clusters"]
OUTPUTS = ["metrics", "isotopes", "colocalization", "methods_table", "network", "members"]


def main(
    images: Path,
    embeddings: Path,
    compare_embeddings: Path,
    sc_clusters: Path,
    selflabel_clusters: Path,
    clusters: Path,
    metrics: Path,
    isotopes: Path,
    colocalization: Path,
    methods_table: Path,
    network: Path,
    members: Path,
    *,
    n_clusters: Path | None = None,
    settings: EvaluateSettings,
    cluster: ClusterSettings,
    compare: CompareSettings,
    answer: AnswerSettings,
    seed: int,
    annotations: str | None = None,
    threads: int = 1,
    dataset: str = "cli",
) -> None:
    """Write metrics.json, isotopes.tsv, colocalization.tsv, methods.tsv, network.graphml
    and cluster_members.tsv."""
    cluster = with_chosen_k(cluster, n_clusters)
    mz, mask = read_ion_mz(images), read_mask(images)
    _, feats, _ = read_embeddings(embeddings, mz)
    feats |= read_embeddings(compare_embeddings, mz, require="features_untrained")[1]
    try:
        check_cluster_args(len(mz), cluster.n_clusters, cluster.n_neighbors)
    except ValueError as err:
        raise InputError(images, str(err)) from None
    answer_table = read_clusters(clusters, mz)  # the answer, with its confidences and names
    given = {
        "simclr_sc": read_cluster_labels(sc_clusters, mz),
        "simclr_selflabel": read_cluster_labels(selflabel_clusters, mz),
        "answer": np.array(answer_table["cluster"], dtype=np.int64),
    }
    with threadpool_limits(limits=max(1, threads)):
        classical, blurred = ev.classical_features(images, compare, seed=seed, workers=threads)
        kept: dict = {}
        labels = ev.cluster_all(classical, feats, given, cluster, seed=seed, keep=kept)
        source, answer_features = ev.answer_representation(answer.method, classical, feats)
        stable = ev.stability(answer_features, labels[source], cluster, seed)
    iso = ev.isotope_pairs(mz, blurred, settings)
    truth, n_rows = (None, 0)
    if annotations:
        truth, n_rows = read_annotations(annotations, mz, settings.annotation_tolerance_ppm)
    rows = ev.method_rows(labels, iso, truth, cluster.n_clusters)
    counts = {
        "dataset": dataset,
        "n_ions": len(mz),
        "n_pixels_tissue": int(mask.sum()),
        "n_clusters": int(cluster.n_clusters),
        "n_annotation_rows": n_rows,
    }
    report = ev.metrics_report(
        counts, labels, rows, iso, truth, answer_features, stable, answer.method
    )
    scores = ev.pair_scores(feats["features"], kept["metaspace_sc"])
    coloc = ev.colocalization_table(mz, scores, answer_table, settings.top_n)
    table = ev.methods_table(mz, labels, truth)
    ev.write_metrics(metrics, report)
    ev.write_network(network, mz, answer_table, scores, settings)
    member_table = ev.cluster_members(answer_table, scores["metaspace"])
    tables = ((iso, isotopes), (coloc, colocalization), (table, methods_table))
    for frame, path in (*tables, (member_table, members)):
        with atomic_output(path) as tmp:
            frame.to_csv(tmp, sep="\t", index=False, float_format="%.6f")


if __name__ == "__main__":
    run_step(main, inputs=INPUTS, outputs=OUTPUTS)
