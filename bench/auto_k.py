"""How well ``n_clusters: auto`` finds the true number of classes, against the eigengap.

Runs the workflow up to ``ion_images`` on every data set of the quality suite
(``bench/quality.py``), each made from several data seeds, then chooses K on each by
parallel analysis (the workflow's ``choose_k``: eigenvalues of the smoothed-Pearson
correlation matrix above those of the same images with random signs) and, for comparison,
by the largest eigengap of the normalised Laplacian of the answer's kNN graph. The demo
(``resources/demo``, 8 classes) is scored when its ion images exist. Then clusters the
answer's representation (smoothed Pearson + spectral clustering) with K from parallel
analysis, the config's default and the true K, and scores each against the annotations.

    python bench/auto_k.py [--data-seeds 0 100 200] [--out bench/work/auto_k.tsv]

Prints one row per data set, the share within +-1 of the true K for each criterion, and the
answer's Hungarian accuracy and ARI for each K (mean and sd over the data sets).
"""

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "bench"), str(ROOT / "tests")]

import quality  # noqa: E402
from conftest import workflow_settings  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from msicoloc.baselines import classical_grams, correlation_from_gram, gram_features  # noqa: E402
from msicoloc.cluster import (  # noqa: E402
    knn_graph,
    knn_spectral_clustering,
    parallel_analysis_n_clusters,
)
from msicoloc.images import read_ion_mz  # noqa: E402
from msicoloc.metrics import hungarian_accuracy, read_annotations  # noqa: E402


def eigengap_k(gram: np.ndarray, settings) -> int:
    """The largest gap between consecutive eigenvalues of the kNN graph's normalised Laplacian
    (the criterion ``auto`` used before parallel analysis)."""
    from scipy.sparse.csgraph import laplacian

    graph = knn_graph(gram_features(gram), settings.n_neighbors, affinity=settings.affinity)
    values = np.linalg.eigvalsh(laplacian(graph, normed=True).toarray())
    lo, hi = settings.auto_range
    ks = np.arange(lo, min(hi, len(values) - 1) + 1)
    return int(ks[np.argmax(values[ks] - values[ks - 1])])


def ion_images(data_seeds: list[int]) -> dict[str, tuple[Path, Path, int]]:
    """Write the suite's data sets for every data seed and run the workflow to ion_images."""
    folder = ROOT / "bench/work/auto_k"
    folder.mkdir(parents=True, exist_ok=True)
    rows, sets = ["dataset\timzml\tannotations\tn_clusters"], {}
    for offset in data_seeds:
        for name, spec in quality.SUITE.items():
            spec = dataclasses.replace(spec, seed=spec.seed + offset)
            tag = f"autok_{name}_{offset}"
            imzml, ann, _ = quality.write_dataset(tag, spec, folder)
            rows.append(f"{tag}\t{imzml}\t{ann}\t{spec.classes}")
            sets[tag] = (ROOT / f"results/{tag}/ion_images.h5", ann, spec.classes)
    (folder / "datasets.tsv").write_text("\n".join(rows) + "\n")
    (folder / "config.yaml").write_text(f"datasets: {folder / 'datasets.tsv'}\n")
    targets = [str(path.relative_to(ROOT)) for path, _, _ in sets.values()]
    command = [sys.executable, "-m", "snakemake", *targets, "--cores", "2", "--quiet"]
    command += ["--configfile", str(folder / "config.yaml")]
    subprocess.run(command, check=True, cwd=ROOT)
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-seeds", type=int, nargs="+", default=[0, 100])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/work/auto_k.tsv")
    args = parser.parse_args()
    sets = ion_images(args.data_seeds)
    demo = ROOT / "results/demo/ion_images.h5"
    if demo.is_file():
        sets["demo"] = (demo, ROOT / "resources/demo/demo_annotations.tsv", 8)
    cluster, compare = workflow_settings("cluster"), workflow_settings("compare")
    tolerance = workflow_settings("evaluate").annotation_tolerance_ppm
    rows = []
    for name, (path, annotations, true_k) in sets.items():
        grams = classical_grams(
            path,
            ["pearson_smooth", "pearson_smooth_null"],
            smooth_sigma=compare.smooth_sigma,
            null_seed=0,
        )
        pa, _, _ = parallel_analysis_n_clusters(
            correlation_from_gram(grams["pearson_smooth"]),
            correlation_from_gram(grams["pearson_smooth_null"]),
            cluster.auto_range,
        )
        gap = eigengap_k(grams["pearson_smooth"], cluster)
        row = {"dataset": name, "true_k": true_k, "parallel_analysis": pa, "eigengap": gap}
        truth, _ = read_annotations(annotations, read_ion_mz(path), tolerance)
        known = np.array([t is not None for t in truth])
        features = gram_features(grams["pearson_smooth"])
        for tag, k in (("auto", pa), ("default", cluster.n_clusters), ("true", true_k)):
            settings = dataclasses.replace(cluster, n_clusters=int(k))
            labels = knn_spectral_clustering(features, settings, random_state=0)[known]
            row[f"accuracy_{tag}"] = hungarian_accuracy(truth[known], labels)
            row[f"ari_{tag}"] = adjusted_rand_score(truth[known].astype(str), labels)
        rows.append(row)
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, sep="\t", index=False)
    print(table.to_string(index=False))
    for criterion in ("parallel_analysis", "eigengap"):
        hits = (table[criterion] - table.true_k).abs() <= 1
        print(f"{criterion}: within +-1 on {hits.sum()} of {len(table)}")
    scores = table.filter(regex="^(accuracy|ari)_").agg(["mean", "std"]).round(3)
    print(f"the answer with K = parallel analysis (auto), {cluster.n_clusters} (default), true:")
    print(scores.to_string())


if __name__ == "__main__":
    main()
