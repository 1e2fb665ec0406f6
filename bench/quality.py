"""Quality suite: every method on several semi-real data sets, over several workflow seeds.

One data set is one question a user's data could ask. The suite varies what makes
co-localization hard, so that no single benchmark can be tuned to:

* **pattern sources**: real ion images of a glioblastoma section, the 13 real class images of
  the paper's mouse uterus benchmark (``../shared/data``), and procedurally drawn tissue;
* **class geometry**: classes picked as far apart as possible, or close (pairwise pattern
  correlation up to 0.8, or blends of two patterns); class sizes from 3 to dozens;
* **image size and shape**: 40 x 40 to 288 x 288 pixels, aspect ratios up to 1:3;
* **nuisances** from easy to brutal (see ``NUISANCE``): non-linear contrast curves (power and
  logistic threshold), on-tissue background up to the signal's own level, admixture of another
  pattern up to half, hotspot pixels, Poisson counts down to a few per pixel, isotopes, m/z
  jitter, calibration drift, noise peaks and matrix peaks.

Every data set is written as a processed imzML with its annotations; the workflow then runs on
it as a user runs it (``snakemake``, the default config plus ``--configfile`` extras), once
per workflow seed, and every method's Hungarian accuracy is read from ``metrics.json``. The
table shows mean +- standard deviation over the seeds, then one line per data set: does the
workflow's final answer beat the best classical method, and by how much.

Run:  python bench/quality.py [--seeds 0 1 2] [--datasets glio_far uterus] [--cores 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

from msicoloc.baselines import pearson_vectors, smooth_on_tissue
from msicoloc.synth import make_patterns, simulate_ions, simulate_spectra, write_imzml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

#: simulate_spectra settings per nuisance level. counts: expected counts of the most abundant
#: ion at its pattern's maximum (abundances spread over 1.5 decades below it).
NUISANCE = {
    "easy": dict(
        counts_scale=100.0,
        contrast_gamma=(0.7, 1.5),
        admixture=0.0,
        admixture_max=0.15,
        curves="power",
        tissue_background=0.1,
        hotspot_fraction=0.0,
    ),
    "medium": dict(
        counts_scale=40.0,
        contrast_gamma=(0.5, 2.0),
        admixture=0.0,
        admixture_max=0.3,
        curves="mixed",
        tissue_background=0.3,
        hotspot_fraction=0.002,
    ),
    "strong": dict(
        counts_scale=20.0,
        contrast_gamma=(0.4, 2.5),
        admixture=0.1,
        admixture_max=0.4,
        curves="mixed",
        tissue_background=0.6,
        hotspot_fraction=0.005,
    ),
    "brutal": dict(
        counts_scale=10.0,
        contrast_gamma=(0.33, 3.0),
        admixture=0.2,
        admixture_max=0.5,
        curves="mixed",
        tissue_background=1.0,
        hotspot_fraction=0.01,
    ),
}


@dataclass(frozen=True)
class Spec:
    """One suite data set."""

    source: str  # glioblastoma | uterus | procedural
    classes: int
    ions: int  # monoisotopic ions (isotopes come on top)
    shape: tuple[int, int] | None  # canvas (height, width); None = the source's own
    nuisance: str
    pick: str = "far"  # far | close: how classes are picked from a real source
    seed: int = 0  # of the data (patterns, ions, spectra)


SUITE = {
    "glio_far": Spec("glioblastoma", 10, 130, None, "medium", "far"),
    "glio_close": Spec("glioblastoma", 12, 150, (100, 300), "strong", "close", seed=1),
    "uterus": Spec("uterus", 13, 160, None, "medium", seed=2),
    "uterus_brutal": Spec("uterus", 13, 160, (288, 288), "brutal", seed=3),
    "proc_small": Spec("procedural", 6, 80, (40, 40), "easy", seed=4),
    "proc_close": Spec("procedural", 10, 130, (60, 180), "strong", "close", seed=5),
}


# --------------------------------------------------------------------------------------------
# Class patterns


def load_png_stack(folder: Path, order=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Grey values (n, H, W) in [0, 1] and the tissue mask (alpha channel) of PNG images."""
    files = sorted(folder.glob("*.png"), key=order)
    if not files:
        raise SystemExit(f"no PNG images in {folder}: the suite needs ../shared/data")
    rgba = np.stack([np.asarray(Image.open(f).convert("RGBA")) for f in files])
    mask = rgba[0, :, :, 3] > 0
    return rgba[..., 0].astype(np.float32) / 255.0 * mask, mask, [f.stem for f in files]


def _corr_matrix(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x @ x.T


def pick_classes(smooth: np.ndarray, raw: np.ndarray, mask: np.ndarray, k: int, how: str):
    """Indices of ``k`` structured images: far apart (greedy max-min correlation) or close.

    Structure = the share of an image's variance that survives the blur; an image that is mostly
    pixel noise would make a class no method could see. ``close`` alternates a far pick with the
    candidate most similar to a chosen one while below 0.8 correlation with all of them.
    """
    s, r = smooth[:, mask], raw[:, mask]
    structure = s.var(axis=1) / np.maximum(r.var(axis=1), 1e-12)
    usable = np.flatnonzero((structure > np.quantile(structure, 0.5)) & (s.max(axis=1) > 0.05))
    corr = _corr_matrix(s[usable])
    chosen = [int(np.argmax(structure[usable]))]
    while len(chosen) < k:
        worst = corr[:, chosen].max(axis=1)
        worst[chosen] = np.inf
        near = np.where(worst <= 0.8, worst, -np.inf)
        if how == "close" and len(chosen) % 2 == 1 and np.isfinite(near).any():
            chosen.append(int(np.argmax(near)))
        else:
            chosen.append(int(np.argmin(worst)))
    return [int(usable[i]) for i in chosen]


def blend_close(patterns: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blend every second class's pattern with the previous class's (correlation ~0.6-0.8)."""
    out = patterns.copy()
    for c in range(1, len(out), 2):
        w = rng.uniform(0.35, 0.5)
        out[c] = (1 - w) * patterns[c] + w * patterns[c - 1]
        out[c] /= max(out[c].max(), 1e-12)
    return out * mask


def class_patterns(spec: Spec, rng: np.random.Generator):
    """Patterns (k, H, W) in [0, 1], tissue mask and per-class weights (relative sizes)."""
    if spec.source == "procedural":
        h, w = spec.shape
        patterns, mask = make_patterns(h, w, spec.classes, rng)
        if spec.pick == "close":
            patterns = blend_close(patterns, mask, rng)
        return patterns, mask, 10.0 ** rng.uniform(-1, 0.4, spec.classes)
    if spec.source == "glioblastoma":
        stack, mask, _ = load_png_stack(SHARED / "glioblastoma", order=lambda p: float(p.stem))
        smooth = smooth_on_tissue(stack, mask, 1.5)
        patterns = smooth[pick_classes(smooth, stack, mask, spec.classes, spec.pick)]
        weights = 10.0 ** rng.uniform(-1, 0.4, spec.classes)
    elif spec.source == "uterus":
        patterns, mask, _ = load_png_stack(SHARED / "uterus")
        table = pd.read_csv(SHARED / "uterus" / "mass_list.tsv", sep="\t", comment="#", header=None)
        weights = np.bincount(table[2].to_numpy(int), minlength=len(patterns)).astype(float)
    else:
        raise ValueError(f"unknown pattern source {spec.source!r}")
    patterns = patterns / np.maximum(patterns.max(axis=(1, 2), keepdims=True), 1e-12)
    if spec.shape is not None and spec.shape != mask.shape:
        zoom = np.array(spec.shape) / np.array(mask.shape)
        mask = ndimage.zoom(mask.astype(np.float32), zoom, order=1) > 0.5
        patterns = np.stack([ndimage.zoom(p, zoom, order=1) for p in patterns])
        patterns = np.clip(patterns, 0, 1) * mask
    return patterns.astype(np.float32), mask, weights


def write_dataset(name: str, spec: Spec, folder: Path) -> tuple[Path, Path, dict]:
    """Write ``name``.imzML/.ibd and its annotations; return the paths and a summary."""
    imzml, ann = folder / f"{name}.imzML", folder / f"{name}_annotations.tsv"
    streams = np.random.SeedSequence(spec.seed).spawn(3)
    rng_pat, rng_ions, rng_spec = (np.random.default_rng(s) for s in streams)
    patterns, mask, weights = class_patterns(spec, rng_pat)
    corr = _corr_matrix(patterns[:, mask])
    np.fill_diagonal(corr, np.nan)
    ions = simulate_ions(spec.classes, spec.ions, rng_ions, class_weights=weights)
    summary = {
        "source": spec.source,
        "canvas": f"{mask.shape[0]}x{mask.shape[1]}",
        "tissue_px": int(mask.sum()),
        "classes": spec.classes,
        "ions": len(ions),
        "class_sizes": f"{min(np.bincount([i.pattern for i in ions]))}-"
        f"{max(np.bincount([i.pattern for i in ions]))}",
        "max_pattern_corr": round(float(np.nanmax(corr)), 2),
        "nuisance": spec.nuisance,
    }
    if imzml.is_file() and ann.is_file():
        return imzml, ann, summary
    spectra = simulate_spectra(ions, patterns, mask, rng_spec, **NUISANCE[spec.nuisance])
    # as in the real acquisitions the patterns come from, only the tissue pixels are measured
    rows, cols = np.nonzero(mask)
    measured = mask.ravel()
    write_imzml(
        imzml,
        np.column_stack([cols + 1, rows + 1]),
        (s for s, keep in zip(spectra, measured, strict=True) if keep),
        pixel_size_um=50.0,
        polarity="positive",
    )
    with open(ann, "w") as f:
        f.write("mz\tlabel\n")
        f.writelines(f"{i.mz:.6f}\t{i.label}\n" for i in ions)
    return imzml, ann, summary


# --------------------------------------------------------------------------------------------
# Running the workflow and scoring


def run_workflow(
    names: list[str],
    seed: int,
    folder: Path,
    extra: list[str],
    cores: str,
    tag: str = "",
    report_only: bool = False,
):
    """Run the workflow up to metrics.json for every data set, with one workflow seed."""
    sheet = folder / f"suite_seed{seed}{tag}.tsv"
    rows = ["dataset\timzml\tannotations\tn_clusters"]
    for name in names:
        run = f"q_{name}_s{seed}{tag}"
        rows.append(
            f"{run}\t{folder / name}.imzML\t{folder / name}_annotations.tsv\t{SUITE[name].classes}"
        )
    sheet.write_text("\n".join(rows) + "\n")
    cfg = folder / f"suite_seed{seed}{tag}.yaml"
    cfg.write_text(f"datasets: {sheet}\nseed: {seed}\n")
    targets = [f"results/q_{name}_s{seed}{tag}/metrics.json" for name in names]
    cmd = [sys.executable, "-m", "snakemake", "--cores", cores, "--configfile", *extra, str(cfg)]
    if not report_only:
        subprocess.run([*cmd, "--", *targets], check=True, cwd=ROOT)
    return {
        name: json.loads((ROOT / t).read_text()) for name, t in zip(names, targets, strict=True)
    }


def score_table(runs: dict[int, dict[str, dict]], score: str = "hungarian_accuracy"):
    """Long table: data set, method, seed, score."""
    rows = []
    for seed, per_set in runs.items():
        for name, metrics in per_set.items():
            for method, row in metrics["methods"].items():
                rows.append((name, method, seed, row.get(score, np.nan)))
    return pd.DataFrame(rows, columns=["dataset", "method", "seed", "score"])


def verdict(long: pd.DataFrame, answer_source: str, classical: list[str]) -> list[str]:
    """The issue's bar, in words: the answer against the best other method (the reference)."""
    mean = long.groupby(["dataset", "method"])["score"].mean().unstack()
    spread = long.groupby(["dataset", "method"])["score"].std(ddof=0).unstack()
    others = [m for m in mean.columns if m not in ("answer", answer_source)]
    reference = mean[others].mean().idxmax()
    lines = [
        f"reference (best mean of the other methods over the suite): {reference} "
        f"{mean[reference].mean():.3f}; answer {mean['answer'].mean():.3f}"
    ]
    best_classical = mean[[c for c in classical if c in mean and c != answer_source]]
    for name in mean.index:
        gap = mean.loc[name, "answer"] - mean.loc[name, reference]
        top = best_classical.loc[name].idxmax()
        margin = mean.loc[name, "answer"] - best_classical.loc[name, top]
        word = "beats it" if margin > 5e-4 else ("ties it" if margin > -5e-4 else "loses")
        lines.append(
            f"{name}: answer {mean.loc[name, 'answer']:.3f} +- {spread.loc[name, 'answer']:.3f}"
            f" vs reference {mean.loc[name, reference]:.3f} ({gap:+.3f}); best classical "
            f"{top} {best_classical.loc[name, top]:.3f}: {word} ({margin:+.3f})"
        )
    gaps = mean["answer"] - mean[reference]
    checks = {
        "answer's suite mean >= the reference's": mean["answer"].mean() >= mean[reference].mean(),
        "nowhere worse than the reference by more than 0.02": bool((gaps >= -0.02).all()),
        "seed spread (std) <= 0.02 on every data set": bool((spread["answer"] <= 0.02).all()),
    }
    lines += [f"required: {k}: {'yes' if ok else 'NO'}" for k, ok in checks.items()]
    hard = mean.index[mean[reference] < 0.95]
    met = (gaps[hard] >= 0.03).sum()
    lines.append(
        f"aim: +0.03 over the reference where it scores below 0.95: {met} of {len(hard)} data sets"
    )
    return lines


#: The answer with one component removed at a time (pearson_smooth: smoothing, centring, kNN
#: edge weights, label assignment), computed from each run's own ion images.
ABLATIONS = {
    "answer (default)": {},
    "- smoothing (sigma 0)": {"sigma": 0.0},
    "- centring (cosine)": {"centred": False},
    "- self-tuning kNN weights (0/1)": {"affinity": "connectivity"},
    "- k-means labels (discretize)": {"assign_labels": "discretize"},
}


def ablation(names: list[str], seeds: list[int], tag: str = "") -> pd.DataFrame:
    """Hungarian accuracy of each answer variant, mean over seeds, per data set."""
    import yaml

    from msicoloc.cluster import knn_spectral_clustering
    from msicoloc.images import read_ion_images
    from msicoloc.metrics import hungarian_accuracy
    from msicoloc.settings import ClusterSettings

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    sigma0, cluster = config["compare"]["smooth_sigma"], config["cluster"]
    rows = []
    for name in names:
        for seed in seeds:
            run = ROOT / "results" / f"q_{name}_s{seed}{tag}"
            stack, _, mask = read_ion_images(run / "ion_images.h5")
            table = pd.read_csv(run / "methods.tsv", sep="\t")
            known = table["annotation"].notna().to_numpy()
            truth = table["annotation"].astype(str).to_numpy()[known]
            for label, change in ABLATIONS.items():
                sigma = change.get("sigma", sigma0)
                if change.get("centred", True):
                    pixels = pearson_vectors(stack, mask, sigma)
                else:
                    pixels = smooth_on_tissue(stack, mask, sigma)[:, mask]
                settings = ClusterSettings(
                    **{
                        **cluster,
                        "n_clusters": SUITE[name].classes,
                        "affinity": change.get("affinity", cluster["affinity"]),
                        "assign_labels": change.get("assign_labels", cluster["assign_labels"]),
                    }
                )
                labels = knn_spectral_clustering(pixels, settings, random_state=seed)
                rows.append((name, label, seed, hungarian_accuracy(truth, labels[known])))
    long = pd.DataFrame(rows, columns=["dataset", "variant", "seed", "score"])
    table = long.groupby(["variant", "dataset"])["score"].mean().unstack()
    table["suite mean"] = table.mean(axis=1)
    return table.loc[list(ABLATIONS)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=list(SUITE), choices=list(SUITE))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / "work" / "quality")
    ap.add_argument("--cores", default="2")
    ap.add_argument(
        "--configfile", action="append", default=[], help="extra config files (e.g. a preset)"
    )
    ap.add_argument(
        "--tag", default="", help="suffix of the result folders, for runs with other configs"
    )
    ap.add_argument("--no-run", action="store_true", help="only write the data sets")
    ap.add_argument(
        "--report-only", action="store_true", help="score the runs there are, run nothing"
    )
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    summaries = {}
    for name in args.datasets:
        summaries[name] = write_dataset(name, SUITE[name], args.workdir)[2]
    print(pd.DataFrame(summaries).T.to_string())
    if args.no_run:
        return
    extra = [str(Path(c).resolve()) for c in args.configfile]
    runs = {
        s: run_workflow(
            args.datasets, s, args.workdir, extra, args.cores, args.tag, args.report_only
        )
        for s in args.seeds
    }
    long = score_table(runs)
    long.to_csv(args.workdir / "scores.tsv", sep="\t", index=False)
    mean = long.groupby(["dataset", "method"])["score"].mean().unstack()
    spread = long.groupby(["dataset", "method"])["score"].std(ddof=0).unstack()
    first = next(iter(next(iter(runs.values())).values()))
    order = [m for m in first["methods"] if m in mean.columns]
    cells = mean[order].map("{:.3f}".format) + " +- " + spread[order].map("{:.3f}".format)
    cells.loc["mean"] = (
        mean[order].mean().map("{:.3f}".format)
        + " +- "
        + (
            long.groupby(["method", "seed"])["score"]
            .mean()
            .unstack()
            .std(axis=1, ddof=0)[order]
            .map("{:.3f}".format)
        )
    )
    print(f"\nHungarian accuracy, mean +- std over workflow seeds {args.seeds}")
    print(cells.T.to_string())
    from msicoloc.evaluate import CLASSICAL_METHODS

    print()
    print("\n".join(verdict(long, first["answer_method"], list(CLASSICAL_METHODS))))
    if first["answer_method"] == "pearson_smooth_sc":
        print("\nAblation of the answer (Hungarian accuracy, mean over seeds)")
        print(ablation(args.datasets, args.seeds, args.tag).round(3).to_string())
    learned = mean[["untrained_sc", "simclr_sc", "simclr_selflabel"]].mean()
    print(
        "\nLearned parts (suite mean): untrained encoder {:.3f} -> SimCLR {:.3f} -> "
        "+ self-labeling {:.3f}".format(*learned)
    )


if __name__ == "__main__":
    main()
