"""Semi-synthetic benchmark: real spatial patterns, known co-localization classes.

Takes the real ion images in ``../shared/data/glioblastoma`` (one PNG per ion, alpha = the
measured pixels), picks a dozen structured, mutually distinct ones, lightly denoised, as
class patterns, and simulates a
processed-mode imzML in which every ion follows one pattern through a random contrast curve,
with a small admixture of another pattern, a random abundance, Poisson counting noise,
isotope partners, m/z jitter and noise peaks (see ``msicoloc.synth``). The annotations
(true class of every ion) are written beside it, then the workflow runs on it and the
metrics table is printed.

Run:  python bench/semisynthetic.py [--images ../shared/data/glioblastoma] [--cores 2]
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from msicoloc.synth import simulate_ions, simulate_spectra, write_imzml


def load_stack(folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Grey values (n, H, W) in [0, 1] and the measured-pixel mask from the alpha channel."""
    files = sorted(folder.glob("*.png"), key=lambda p: float(p.stem))
    if not files:
        raise SystemExit(f"no PNG images in {folder}")
    rgba = np.stack([np.asarray(Image.open(f).convert("RGBA")) for f in files])
    mask = rgba[0, :, :, 3] > 0
    return rgba[..., 0].astype(np.float32) / 255.0, mask, [f.stem for f in files]


def denoise(stack: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur inside the mask (normalised convolution: no bleeding of the background)."""
    m = mask.astype(np.float32)
    num = ndimage.gaussian_filter(stack * m, (0, sigma, sigma))
    den = ndimage.gaussian_filter(m, sigma)
    return np.where(mask, num / np.maximum(den, 1e-6), 0.0).astype(np.float32)


def distinct_patterns(smooth: np.ndarray, raw: np.ndarray, mask: np.ndarray, k: int) -> list[int]:
    """``k`` structured images with low pairwise correlation (greedy max-min).

    Structure = the share of an image's variance that survives the blur; an image that is
    mostly pixel noise would make a "class" that no method could see.
    """
    s, r = smooth[:, mask], raw[:, mask]
    structure = s.var(axis=1) / np.maximum(r.var(axis=1), 1e-12)
    usable = np.flatnonzero((structure > np.quantile(structure, 0.5)) & (s.max(axis=1) > 0.05))
    x = s[usable] - s[usable].mean(axis=1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    corr = x @ x.T
    chosen = [int(np.argmax(structure[usable]))]
    while len(chosen) < k:
        worst = corr[:, chosen].max(axis=1)
        worst[chosen] = np.inf
        chosen.append(int(np.argmin(worst)))
    return [int(usable[i]) for i in chosen]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=Path, default=ROOT.parent / "shared/data/glioblastoma")
    ap.add_argument("--classes", type=int, default=12)
    ap.add_argument("--ions", type=int, default=150, help="monoisotopic ions (isotopes extra)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--counts-scale",
        type=float,
        default=20.0,
        help="expected counts of the most abundant ion at its pattern's maximum; "
        "abundances spread over 1.5 decades below it",
    )
    ap.add_argument(
        "--admixture",
        type=float,
        default=0.15,
        help="share of another class's pattern in every ion image",
    )
    ap.add_argument("--name", default="semisynthetic", help="data set id")
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / "work")
    ap.add_argument("--cores", default="2")
    ap.add_argument(
        "--configfile",
        action="append",
        default=[],
        help="extra config files (e.g. a preset) for the run",
    )
    ap.add_argument(
        "--workflow-seeds",
        type=int,
        nargs="+",
        default=[0],
        help="run the workflow once per seed (config `seed`: training, clustering, "
        "self-labeling) on the same data; the data set id gets _seedN for N > 0",
    )
    ap.add_argument("--no-run", action="store_true", help="only write the data set")
    args = ap.parse_args()

    name = args.name
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    imzml, ann = work / f"{name}.imzML", work / f"{name}_annotations.tsv"
    stack, mask, stems = load_stack(args.images)
    smooth = denoise(stack, mask, sigma=1.5)
    pick = distinct_patterns(smooth, stack, mask, args.classes)
    patterns = smooth[pick] / smooth[pick].max(axis=(1, 2), keepdims=True)
    print("class patterns: m/z", ", ".join(stems[i] for i in pick))
    rng = np.random.default_rng(args.seed)
    ions = simulate_ions(args.classes, args.ions, rng)
    spectra = simulate_spectra(
        ions, patterns, mask, rng, counts_scale=args.counts_scale, admixture=args.admixture
    )
    # the real acquisition measured only the masked pixels: write those, skip the rest
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
    print(f"wrote {imzml}: {mask.sum()} pixels, {len(ions)} ions in {args.classes} classes")
    if args.no_run:
        return

    rows = {seed: name if seed == 0 else f"{name}_seed{seed}" for seed in args.workflow_seeds}
    extra = [str(Path(c).resolve()) for c in args.configfile]
    table = []
    for seed, run_name in rows.items():
        sheet = work / f"{run_name}.tsv"
        sheet.write_text(
            f"dataset\timzml\tannotations\tn_clusters\n{run_name}\t{imzml}\t{ann}\t{args.classes}\n"
        )
        cfg = work / f"{run_name}.yaml"
        cfg.write_text(f"datasets: {sheet}\nseed: {seed}\n")
        cmd = [sys.executable, "-m", "snakemake", "--cores", args.cores, "--configfile"]
        cmd += [*extra, str(cfg), "--", f"results/{run_name}/metrics.json"]
        subprocess.run(cmd, check=True, cwd=ROOT)
        metrics = json.loads((ROOT / "results" / run_name / "metrics.json").read_text())
        table.append((seed, metrics["methods"]))
    print("Hungarian accuracy / ARI per workflow seed")
    methods = list(table[0][1])
    print("seed\t" + "\t".join(methods))
    for seed, res in table:
        cells = [f"{res[m]['hungarian_accuracy']:.3f}/{res[m]['ari']:.3f}" for m in methods]
        print(f"{seed}\t" + "\t".join(cells))


if __name__ == "__main__":
    main()
