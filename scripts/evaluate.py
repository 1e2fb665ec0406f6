"""Evaluate every method side by side: annotations, isotopes, agreement with the answer."""

import logging
from pathlib import Path

from threadpoolctl import threadpool_limits

from msicoloc import InputError
from msicoloc.cluster import check_cluster_args, read_cluster_labels
from msicoloc.embeddings import read_embeddings
from msicoloc.evaluate import (
    ANSWER_SOURCE,
    METHODS,
    agreement,
    best_methods,
    cluster_all,
    colocalization_table,
    isotope_pairs,
    method_rows,
    silhouette,
    stability,
    write_metrics,
)
from msicoloc.evaluate import (
    methods_table as methods_frame,
)
from msicoloc.images import read_ion_mz, read_mask
from msicoloc.metrics import read_annotations
from msicoloc.settings import AnswerSettings, ClusterSettings, CompareSettings, EvaluateSettings
from msicoloc.step import atomic_output, run_step

log = logging.getLogger("evaluate")


def main(
    images: Path,
    embeddings: Path,
    sc_clusters: Path,
    selflabel_clusters: Path,
    clusters: Path,
    metrics: Path,
    isotopes: Path,
    colocalization: Path,
    methods_table: Path,
    *,
    settings: EvaluateSettings,
    cluster: ClusterSettings,
    compare: CompareSettings,
    answer: AnswerSettings,
    seed: int,
    annotations: str | None = None,
    threads: int = 1,
    dataset: str = "cli",
) -> None:
    """Write metrics.json, isotopes.tsv, colocalization.tsv and methods.tsv."""
    mz, mask = read_ion_mz(images), read_mask(images)
    _, feats, _ = read_embeddings(embeddings, mz)
    try:
        check_cluster_args(len(mz), cluster.n_clusters, cluster.n_neighbors)
    except ValueError as err:
        raise InputError(images, str(err)) from None
    given = {
        "simclr_sc": read_cluster_labels(sc_clusters, mz),
        "simclr_selflabel": read_cluster_labels(selflabel_clusters, mz),
        "answer": read_cluster_labels(clusters, mz),
    }
    with threadpool_limits(limits=max(1, threads)):
        labels = cluster_all(images, feats, given, cluster, compare, seed=seed)
        stable = stability(feats["features"], labels["simclr_sc"], cluster, seed)
    iso = isotope_pairs(mz, images, settings)
    truth, n_rows = (None, 0)
    if annotations:
        truth, n_rows = read_annotations(annotations, mz, settings.annotation_tolerance_ppm)
    rows = method_rows(labels, iso, truth, cluster.n_clusters)
    report = {
        "dataset": dataset,
        "n_ions": len(mz),
        "n_pixels_tissue": int(mask.sum()),
        "n_clusters": int(cluster.n_clusters),
        "n_isotope_pairs": len(iso),
        "n_annotated": int(sum(t is not None for t in truth)) if truth is not None else 0,
        "n_annotation_rows": n_rows,
        "silhouette": silhouette(feats["features"], labels["simclr_selflabel"]),
        "answer_method": ANSWER_SOURCE[answer.method],
        "agreement_ari": agreement(labels),
        "stability_ari": stable,
        "method_names": {k: v for k, v in METHODS.items() if k in labels},
        "methods": rows,
        "best": best_methods(rows),
    }
    for name, row in rows.items():
        shown = ", ".join(f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float))
        log.info("%-32s %s", METHODS[name], shown)
    coloc = colocalization_table(mz, feats["features"], labels["answer"], settings.top_n)
    table = methods_frame(mz, labels, truth)
    write_metrics(metrics, report)
    for frame, path in ((iso, isotopes), (coloc, colocalization), (table, methods_table)):
        with atomic_output(path) as tmp:
            frame.to_csv(tmp, sep="\t", index=False, float_format="%.6f")


if __name__ == "__main__":
    run_step(
        main,
        inputs=["images", "embeddings", "sc_clusters", "selflabel_clusters", "clusters"],
        outputs=["metrics", "isotopes", "colocalization", "methods_table"],
    )
