"""Evaluate the clustering against classical baselines, annotations and isotopes."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import json
import logging

import h5py
import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, silhouette_score
from threadpoolctl import threadpool_limits

from msicoloc import InputError
from msicoloc.baselines import cosine_similarity, nearest_neighbours
from msicoloc.cluster import (
    check_cluster_args,
    knn_spectral_clustering,
    read_cluster_labels,
    spectral_settings,
)
from msicoloc.evaluate import ANSWER_SOURCE, METHODS, agreement, cluster_all, disagreement
from msicoloc.images import read_ion_images
from msicoloc.metrics import find_isotopes, isotopic_recall, match_annotations, scores
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
    annotations: str | None = None,
    n_clusters: int = 10,
    n_neighbors: int = 10,
    affinity: str = "local_scaling",
    eigen_solver: str = "auto",
    assign_labels: str = "kmeans",
    compare: dict | None = None,
    answer_method: str = "pearson_smooth",
    seed: int = 0,
    annotation_tolerance_ppm: float = 10.0,
    isotope_tolerance_ppm: float = 5.0,
    isotope_charges: tuple[int, ...] = (1,),
    isotope_min_correlation: float = 0.5,
    isotope_max_order: int = 3,
    top_n: int = 10,
    threads: int = 1,
    dataset: str = "cli",
) -> None:
    """Compare every method on the same ion images and write metrics and exports.

    Parameters
    ----------
    images
        ion_images.h5 (images, mz, mask).
    embeddings
        embeddings.h5 (features, features_untrained, features_autoencoder and, where ImageNet
        weights were available, features_imagenet).
    sc_clusters
        clusters_sc.tsv: spectral clustering of the SimCLR features.
    selflabel_clusters
        clusters_selflabel.tsv: the learned pipeline's clusters after self-labeling.
    clusters
        clusters.tsv: the answer.
    metrics
        metrics.json to write.
    isotopes
        isotopes.tsv to write (isotope pairs found among the peaks).
    colocalization
        colocalization.tsv to write: every ion's nearest ions in the learned feature space.
    methods_table
        TSV of every method's cluster per ion (mz and one column per method).
    annotations
        Optional TSV with columns mz, label (known co-localization classes).
    n_clusters
        Number of clusters for every method.
    n_neighbors
        Neighbours in the kNN graph of every spectral clustering.
    affinity
        kNN edge weights of every spectral clustering: local_scaling or connectivity.
    eigen_solver
        auto, amg, lobpcg or arpack (as in the clustering step).
    assign_labels
        kmeans, discretize or cluster_qr (as in the clustering step).
    compare
        The config's compare section (settings of the classical methods).
    answer_method
        The answer step's method (answer.method), to name which method the answer is.
    seed
        Seed of the baselines' spectral clustering (and the stability check with seed + 1).
    annotation_tolerance_ppm
        Largest m/z difference (ppm) between a peak and the annotation it takes.
    isotope_tolerance_ppm
        Largest deviation (ppm) from the 13C spacing for an isotope pair.
    isotope_charges
        Charge states to look for isotope spacings (1.00336 / z).
    isotope_min_correlation
        Smallest image correlation of an isotope pair.
    isotope_max_order
        Longest isotope chain (M+1, M+2, ...).
    top_n
        Nearest ions listed per ion in colocalization.tsv.
    threads
        CPU threads (kNN search, eigen solver, BLAS).
    dataset
        Data set id, for messages.
    """
    stack, mz, mask = read_ion_images(images)
    with h5py.File(embeddings, "r") as f:
        feats = {k: f[k][()] for k in f if k.startswith("features")}
    try:
        check_cluster_args(len(mz), n_clusters, n_neighbors)
    except ValueError as err:
        raise InputError(images, str(err)) from None
    cluster = {
        "n_neighbors": n_neighbors,
        "affinity": affinity,
        "eigen_solver": eigen_solver,
        "assign_labels": assign_labels,
    }
    given = {
        "simclr_sc": read_cluster_labels(sc_clusters, mz),
        "simclr_selflabel": read_cluster_labels(selflabel_clusters, mz),
        "answer": read_cluster_labels(clusters, mz),
    }
    with threadpool_limits(limits=max(1, threads)):
        labels = cluster_all(
            stack,
            mask,
            feats,
            given,
            n_clusters=n_clusters,
            compare=compare or {},
            cluster=cluster,
            seed=seed,
        )
        stability = float(
            adjusted_rand_score(
                labels["simclr_sc"],
                knn_spectral_clustering(
                    feats["features"],
                    n_clusters,
                    random_state=seed + 1,
                    **spectral_settings(cluster),
                ),
            )
        )
    learned = feats["features"]
    iso = find_isotopes(
        mz,
        stack,
        mask,
        tolerance_ppm=isotope_tolerance_ppm,
        charges=tuple(isotope_charges),
        min_correlation=isotope_min_correlation,
        max_order=isotope_max_order,
    )
    truth = None
    if annotations:
        ann = pd.read_csv(annotations, sep="\t")
        if not {"mz", "label"} <= set(ann.columns):
            raise InputError(annotations, "annotations need columns 'mz' and 'label'")
        truth = match_annotations(
            mz,
            ann["mz"].to_numpy(float),
            ann["label"].astype(str).to_numpy(),
            annotation_tolerance_ppm,
        )
        if not any(t is not None for t in truth):
            raise InputError(annotations, "no annotated m/z matches a peak")

    report: dict = {
        "dataset": dataset,
        "n_ions": len(mz),
        "n_pixels_tissue": int(mask.sum()),
        "n_clusters": int(n_clusters),
        "n_isotope_pairs": len(iso),
        "n_annotated": int(sum(t is not None for t in truth)) if truth is not None else 0,
        "n_annotation_rows": len(ann) if truth is not None else 0,
        "silhouette": float(silhouette_score(learned, labels["simclr_selflabel"], metric="cosine"))
        if len(set(labels["simclr_selflabel"])) > 1
        else float("nan"),
        "answer_method": ANSWER_SOURCE[answer_method],
        "agreement_ari": agreement(labels),
        "stability_ari": stability,
        "method_names": {k: v for k, v in METHODS.items() if k in labels},
        "methods": {},
    }
    for name, lab in labels.items():
        row = {
            "isotopic_recall": isotopic_recall(iso, lab),
            "cluster_sizes": np.bincount(lab, minlength=n_clusters).tolist(),
        }
        if truth is not None:
            known = np.array([t is not None for t in truth])
            row.update(scores(truth[known].astype(str), lab[known]))
        report["methods"][name] = row
    report["best"] = {
        key: max(report["methods"], key=lambda m: _sortable(report["methods"][m][key]))
        for key in ("purity", "hungarian_accuracy", "ari", "nmi", "isotopic_recall")
        if key in report["methods"]["answer"]
    }
    for name, row in report["methods"].items():
        shown = ", ".join(f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float))
        log.info("%-32s %s", METHODS[name], shown)

    idx, sim = nearest_neighbours(cosine_similarity(learned), top_n)
    coloc = pd.DataFrame(
        {
            "mz": np.repeat(mz, idx.shape[1]),
            "rank": np.tile(np.arange(1, idx.shape[1] + 1), len(mz)),
            "neighbour_mz": mz[idx].ravel(),
            "cosine": sim.ravel(),
            "same_cluster": (labels["answer"][idx] == labels["answer"][:, None]).ravel(),
        }
    )
    table = pd.DataFrame({"mz": mz, **labels, "disagreement": disagreement(labels)})
    if truth is not None:
        table["annotation"] = truth
    with atomic_output(metrics) as tmp:
        tmp.write_text(json.dumps(report, indent=1, default=_json_default) + "\n")
    with atomic_output(isotopes) as tmp:
        iso.to_csv(tmp, sep="\t", index=False, float_format="%.6f")
    with atomic_output(colocalization) as tmp:
        coloc.to_csv(tmp, sep="\t", index=False, float_format="%.6f")
    with atomic_output(methods_table) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6f")


def _sortable(value: float) -> float:
    return -np.inf if value is None or np.isnan(value) else value


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value))


if __name__ == "__main__":
    run_step(
        main,
        inputs=["images", "embeddings", "sc_clusters", "selflabel_clusters", "clusters"],
        outputs=["metrics", "isotopes", "colocalization", "methods_table"],
    )
