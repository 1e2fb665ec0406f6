"""Every method side by side: the same ion images, number of clusters and spectral clustering.

:data:`METHODS` names what is compared, in the order reports show it: the classical scores
the field uses, the dimensionality reductions, the earlier deep baselines, the learned
pipeline of Hu et al. (SimCLR, spectral clustering, self-labeling) and the workflow's answer.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, silhouette_score

from msicoloc.baselines import (
    classical_grams,
    cosine_similarity,
    gram_features,
    nearest_neighbours,
    representations_from_file,
)
from msicoloc.cluster import knn_agreement, knn_spectral_clustering
from msicoloc.metrics import ISOTOPE_BLUR, find_isotopes, isotopic_recall, scores
from msicoloc.settings import ClusterSettings, CompareSettings, EvaluateSettings

log = logging.getLogger(__name__)

#: Method key -> name shown to users; "answer" is clusters.tsv.
METHODS = {
    "pixel_cosine_sc": "pixel-vector cosine + SC",
    "pearson_sc": "Pearson correlation + SC",
    "spearman_sc": "Spearman rank correlation + SC",
    "metaspace_sc": "METASPACE-style cosine + SC",
    "pca_sc": "PCA + SC",
    "nmf_sc": "NMF + SC",
    "pearson_smooth_sc": "smoothed Pearson + SC",
    "autoencoder_sc": "conv. autoencoder + SC",
    "imagenet_sc": "ImageNet CNN features + SC",
    "untrained_sc": "untrained encoder + SC",
    "simclr_sc": "SimCLR + SC",
    "simclr_selflabel": "SimCLR + SC + self-labeling",
    "answer": "answer (clusters.tsv)",
}

#: Classical methods: representation name in msicoloc.baselines for each method key.
CLASSICAL_METHODS = {
    "pixel_cosine_sc": "pixel_cosine",
    "pearson_sc": "pearson",
    "spearman_sc": "spearman",
    "metaspace_sc": "metaspace",
    "pca_sc": "pca",
    "nmf_sc": "nmf",
    "pearson_smooth_sc": "pearson_smooth",
}

#: Learned embeddings (embeddings.h5 dataset) clustered by each method key.
EMBEDDING_METHODS = {
    "autoencoder_sc": "features_autoencoder",
    "imagenet_sc": "features_imagenet",
    "untrained_sc": "features_untrained",
}

#: Which method key the answer step's ``answer.method`` equals.
ANSWER_SOURCE = {"pearson_smooth": "pearson_smooth_sc", "simclr_selflabel": "simclr_selflabel"}


def classical_features(
    images: str | os.PathLike[str], compare: CompareSettings, *, seed: int, workers: int = 1
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Features of every classical method by method key, and the isotope test's blurred
    correlation matrix, from one pass over ion_images.h5
    (:func:`msicoloc.baselines.representations_from_file`)."""
    names = {name: key for key, name in CLASSICAL_METHODS.items()}
    out = representations_from_file(
        names, images, compare, seed, blur_sigma=ISOTOPE_BLUR, workers=workers
    )
    blurred = out.pop("blurred")
    return {names[name]: features for name, features in out.items()}, blurred


def cluster_all(
    classical: dict[str, np.ndarray],
    embeddings: dict[str, np.ndarray],
    given: dict[str, np.ndarray],
    cluster: ClusterSettings,
    *,
    seed: int,
    keep: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Labels of every method in :data:`METHODS` order.

    Parameters
    ----------
    classical
        Features of the classical methods by method key (:func:`classical_features`).
    embeddings
        Learned features by embeddings.h5 name; a method whose features are absent (ImageNet
        without installed weights) is left out.
    given
        Labels computed by earlier steps: simclr_sc, simclr_selflabel, answer.
    cluster
        Spectral clustering settings and the number of clusters, the same for every method.
    seed
        Seed of the spectral clusterings.
    keep
        If given, filled with the features of the methods computed here, by method key.
    """
    labels = {}
    for key in METHODS:
        if key in given:
            labels[key] = given[key]
            continue
        if key in classical:
            features = classical[key]
        elif EMBEDDING_METHODS.get(key) in embeddings:
            features = embeddings[EMBEDDING_METHODS[key]]
        else:
            continue
        labels[key] = knn_spectral_clustering(features, cluster, random_state=seed)
        if keep is not None:
            keep[key] = features
    return labels


def answer_clusters(
    method: str,
    images: str | os.PathLike[str],
    learned: pd.DataFrame,
    cluster: ClusterSettings,
    *,
    smooth_sigma: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The workflow's answer (labels, confidence) by ``answer.method``.

    ``pearson_smooth``: spectral clustering of the Pearson correlations of the images after
    an on-tissue blur of ``smooth_sigma`` pixels, confidence = share of an ion's nearest
    neighbours in its cluster; ``simclr_selflabel``: the learned pipeline's clusters and
    classifier probabilities (``learned``, clusters_selflabel.tsv).
    """
    if method == "simclr_selflabel":
        return learned["cluster"].to_numpy(np.int64), learned["confidence"].to_numpy(float)
    if method != "pearson_smooth":
        raise ValueError(f"answer.method must be one of {list(ANSWER_SOURCE)}, got {method!r}")
    gram = classical_grams(images, ["pearson_smooth"], smooth_sigma=smooth_sigma)
    features = gram_features(gram["pearson_smooth"])
    labels = knn_spectral_clustering(features, cluster, random_state=seed)
    return labels, knn_agreement(features, labels, cluster.n_neighbors)


def agreement(labels: dict[str, np.ndarray], reference: str = "answer") -> dict[str, float]:
    """Adjusted Rand index between the ``reference`` clustering and every other method."""
    ref = labels[reference]
    return {k: float(adjusted_rand_score(ref, v)) for k, v in labels.items() if k != reference}


def disagreement(labels: dict[str, np.ndarray], reference: str = "answer") -> np.ndarray:
    """Per ion, how much the other methods disagree with ``reference`` about its partners.

    For ion i and method m: 1 - Jaccard index of i's cluster mates in the reference and in m
    (i itself excluded; two ions alone in their clusters agree). Averaged over the methods:
    0 = every method groups i with the same ions; 1 = none shares any partner with the answer.
    """
    ref = labels[reference]
    same_ref = ref[:, None] == ref[None, :]
    np.fill_diagonal(same_ref, False)
    scores = []
    for key, lab in labels.items():
        if key == reference:
            continue
        same = lab[:, None] == lab[None, :]
        np.fill_diagonal(same, False)
        inter = (same & same_ref).sum(axis=1)
        union = (same | same_ref).sum(axis=1)
        scores.append(1 - np.where(union > 0, inter / np.maximum(union, 1), 1.0))
    return np.mean(scores, axis=0) if scores else np.zeros(len(ref))


def method_rows(
    labels: dict[str, np.ndarray],
    isotopes: pd.DataFrame,
    truth: np.ndarray | None,
    n_clusters: int,
) -> dict[str, dict]:
    """Per method: isotopic recall, cluster sizes and, with annotations, the scores."""
    rows = {}
    for name, lab in labels.items():
        row = {
            "isotopic_recall": isotopic_recall(isotopes, lab),
            "cluster_sizes": np.bincount(lab, minlength=n_clusters).tolist(),
        }
        if truth is not None:
            known = np.array([t is not None for t in truth])
            row.update(scores(truth[known].astype(str), lab[known]))
        rows[name] = row
    return rows


def best_methods(rows: dict[str, dict]) -> dict[str, str]:
    """The best method by each score the answer has (NaN counts as worst)."""

    def sortable(value: float | None) -> float:
        return -np.inf if value is None or np.isnan(value) else value

    keys = ("purity", "hungarian_accuracy", "ari", "nmi", "isotopic_recall")
    return {
        key: max(rows, key=lambda m: sortable(rows[m][key]))
        for key in keys
        if key in rows["answer"]
    }


def silhouette(features: np.ndarray, labels: np.ndarray) -> float:
    """Cosine silhouette of a clustering (NaN for a single cluster)."""
    if len(set(labels)) < 2:
        return float("nan")
    return float(silhouette_score(features, labels, metric="cosine"))


def answer_representation(
    answer_method: str, classical: dict[str, np.ndarray], embeddings: dict[str, np.ndarray]
) -> tuple[str, np.ndarray]:
    """The spectral clustering the answer comes from (its method key) and its features:
    smoothed Pearson's, or the learned features whose clusters self-labeling starts from."""
    if answer_method == "pearson_smooth":
        return "pearson_smooth_sc", classical["pearson_smooth_sc"]
    return "simclr_sc", embeddings["features"]


def stability(features: np.ndarray, labels: np.ndarray, cluster: ClusterSettings, seed: int):
    """ARI between ``labels`` and a clustering of the same features with the next seed."""
    again = knn_spectral_clustering(features, cluster, random_state=seed + 1)
    return float(adjusted_rand_score(labels, again))


def pair_scores(learned: np.ndarray, metaspace: np.ndarray) -> dict[str, np.ndarray]:
    """The two scores of every pair of ions that the outputs show side by side: cosine of the
    learned features ("learned") and the METASPACE-style score ("metaspace", cosine of that
    method's vectors)."""
    return {"learned": cosine_similarity(learned), "metaspace": cosine_similarity(metaspace)}


def colocalization_table(
    mz: np.ndarray, scores: dict[str, np.ndarray], answer: pd.DataFrame, top_n: int
) -> pd.DataFrame:
    """Each ion's co-localized partners (colocalization.tsv): its ``top_n`` best by each of
    the :func:`pair_scores`, each pair with both scores and both ranks (1 = most similar of
    all ions), ordered by the learned rank; with the answer's clusters and names."""
    n = len(mz)
    ranks = {}
    for key, sim in scores.items():  # rank of every other ion; an ion's own stays 0
        order, _ = nearest_neighbours(sim, n - 1)
        ranks[key] = np.zeros((n, n), dtype=np.int64)
        np.put_along_axis(ranks[key], order, np.arange(1, n)[None, :], axis=1)
    top_n = min(top_n, n - 1)
    pair = (ranks["learned"] <= top_n) | (ranks["metaspace"] <= top_n)
    np.fill_diagonal(pair, False)
    i, j = np.nonzero(pair)
    order = np.lexsort((ranks["learned"][i, j], i))
    i, j = i[order], j[order]
    labels = answer["cluster"].to_numpy()
    names = answer["name"].to_numpy(object) if "name" in answer else np.full(n, "")
    return pd.DataFrame(
        {
            "mz": mz[i],
            "neighbour_mz": mz[j],
            "learned": scores["learned"][i, j],
            "metaspace": scores["metaspace"][i, j],
            "learned_rank": ranks["learned"][i, j],
            "metaspace_rank": ranks["metaspace"][i, j],
            "same_cluster": labels[i] == labels[j],
            "name": names[i],
            "neighbour_name": names[j],
        }
    )


def isotope_pairs(mz: np.ndarray, blurred: np.ndarray, settings: EvaluateSettings) -> pd.DataFrame:
    """13C isotope pairs among the ion images (see :func:`msicoloc.metrics.find_isotopes`),
    from their correlations after a blur of :data:`msicoloc.metrics.ISOTOPE_BLUR` pixels
    (``blurred``, from :func:`classical_features`)."""
    return find_isotopes(
        mz,
        corr=blurred,
        tolerance_ppm=settings.isotope_tolerance_ppm,
        charges=tuple(settings.isotope_charges),
        min_correlation=settings.isotope_min_correlation,
        max_order=settings.isotope_max_order,
    )


def methods_table(
    mz: np.ndarray, labels: dict[str, np.ndarray], truth: np.ndarray | None
) -> pd.DataFrame:
    """methods.tsv: every method's cluster per ion, its disagreement and the annotation."""
    table = pd.DataFrame({"mz": mz, **labels, "disagreement": disagreement(labels)})
    if truth is not None:
        table["annotation"] = truth
    return table


def write_metrics(path, report: dict) -> None:
    """Write metrics.json atomically (numpy scalars as plain numbers)."""
    import json

    from msicoloc.step import atomic_output

    def plain(value):
        if isinstance(value, np.generic):
            return value.item()
        raise TypeError(type(value))

    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(report, indent=1, default=plain) + "\n")


def network_edges(scores: dict[str, np.ndarray], min_score: float) -> pd.DataFrame:
    """Pairs of ions (source < target) whose learned-feature cosine or METASPACE-style score
    (:func:`pair_scores`) reaches ``min_score``, with both scores."""
    a, b = scores["learned"], scores["metaspace"]
    source, target = np.nonzero(np.triu((a >= min_score) | (b >= min_score), k=1))
    return pd.DataFrame(
        {
            "source": source,
            "target": target,
            "learned_cosine": a[source, target],
            "metaspace_score": b[source, target],
        }
    )


def write_graphml(path, mz: np.ndarray, clusters: pd.DataFrame, edges: pd.DataFrame) -> None:
    """The co-localization network as GraphML (Cytoscape, networkx, Gephi): one node per ion
    (m/z, name, cluster, confidence), one undirected edge per pair of :func:`network_edges`."""
    import xml.etree.ElementTree as ET

    from msicoloc.step import atomic_output

    root = ET.Element("graphml", xmlns="http://graphml.graphdrawing.org/xmlns")
    keys = [
        ("mz", "node", "double"),
        ("name", "node", "string"),
        ("cluster", "node", "int"),
        ("confidence", "node", "double"),
        ("learned_cosine", "edge", "double"),
        ("metaspace_score", "edge", "double"),
    ]
    for name, where, kind in keys:
        ET.SubElement(root, "key", {"id": name, "for": where, "attr.name": name, "attr.type": kind})
    graph = ET.SubElement(root, "graph", id="colocalization", edgedefault="undirected")
    for i, m in enumerate(mz):
        node = ET.SubElement(graph, "node", id=f"ion{i}")
        for key, value in (
            ("mz", f"{m:.6f}"),
            ("name", str(clusters["name"].iloc[i]) if "name" in clusters else ""),
            ("cluster", str(int(clusters["cluster"].iloc[i]))),
            ("confidence", f"{clusters['confidence'].iloc[i]:.4f}"),
        ):
            ET.SubElement(node, "data", key=key).text = value
    for row in edges.itertuples(index=False):
        edge = ET.SubElement(graph, "edge", source=f"ion{row.source}", target=f"ion{row.target}")
        ET.SubElement(edge, "data", key="learned_cosine").text = f"{row.learned_cosine:.4f}"
        ET.SubElement(edge, "data", key="metaspace_score").text = f"{row.metaspace_score:.4f}"
    ET.indent(root)
    with atomic_output(path) as tmp:
        ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)


def cluster_members(clusters: pd.DataFrame, metaspace: np.ndarray) -> pd.DataFrame:
    """One row per ion, grouped by cluster (largest first) and most confident first, with the
    cluster's size and the ion's mean METASPACE-style score (``metaspace``, the n x n scores
    of :func:`pair_scores`) to its cluster mates."""
    labels = clusters["cluster"].to_numpy()
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    mates = same.sum(axis=1)
    score = np.where(mates > 0, (metaspace * same).sum(axis=1) / np.maximum(mates, 1), np.nan)
    columns = ["cluster", "mz", "name", "confidence"] if "name" in clusters else None
    table = clusters[columns or ["cluster", "mz", "confidence"]].assign(
        cluster_size=np.bincount(labels)[labels], mean_score_to_mates=score
    )
    table = table.sort_values(["cluster", "confidence"], ascending=[True, False], kind="stable")
    return table.assign(rank=table.groupby("cluster").cumcount() + 1).reset_index(drop=True)


def write_network(
    path, mz: np.ndarray, clusters: pd.DataFrame, scores: dict, settings: EvaluateSettings
) -> None:
    """network.graphml: the answer's clusters and the pairs of :func:`network_edges`."""
    write_graphml(path, mz, clusters, network_edges(scores, settings.network_min_score))


def metrics_report(
    counts: dict,
    labels: dict[str, np.ndarray],
    rows: dict[str, dict],
    isotopes: pd.DataFrame,
    truth: np.ndarray | None,
    answer_features: np.ndarray,
    stability_ari: float,
    answer_method: str,
) -> dict:
    """metrics.json: ``counts`` (data set, ions, pixels, clusters, annotation rows), then the
    comparison of every method; each method's scores are also logged. The silhouette is the
    answer's, in ``answer_features`` (:func:`answer_representation`), as is the stability."""
    for name, row in rows.items():
        shown = ", ".join(f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float))
        log.info("%-32s %s", METHODS[name], shown)
    n_rows = counts.pop("n_annotation_rows")
    return {
        **counts,
        "n_isotope_pairs": len(isotopes),
        "n_annotated": int(sum(t is not None for t in truth)) if truth is not None else 0,
        "n_annotation_rows": n_rows,
        "silhouette": silhouette(answer_features, labels["answer"]),
        "answer_method": ANSWER_SOURCE[answer_method],
        "agreement_ari": agreement(labels),
        "stability_ari": stability_ari,
        "method_names": {k: v for k, v in METHODS.items() if k in labels},
        "methods": rows,
        "best": best_methods(rows),
    }
