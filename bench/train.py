"""Benchmark: SimCLR training throughput, and the wall time of the whole demo run.

Prints images/s (each image counts once per view, two views per step) for the default
encoder and for the paper's, both on this machine, then runs the embedded demo from a fresh
copy of the workflow (`snakemake --cores N`) and prints its wall time.

Run:  python bench/train.py [--cores 2] [--skip-demo]
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from msicoloc.settings import SimCLRSettings, from_config, replace
from msicoloc.step import read_config
from msicoloc.train import train_simclr

ROOT = Path(__file__).resolve().parents[1]

SIMCLR = from_config(SimCLRSettings, read_config(ROOT / "config/config.yaml")[0]["simclr"])


def throughput(encoder, image_size, batch_size, n_images, epochs, in_chans, threads):
    rng = np.random.default_rng(0)
    images = rng.gamma(2.0, 1.0, (n_images, 48, 56)).astype(np.float32)
    t0 = time.perf_counter()
    settings = replace(
        SIMCLR,
        encoder=encoder,
        in_chans=in_chans,
        image_size=image_size,
        batch_size=batch_size,
        epochs=epochs,
    )
    _, records = train_simclr(images, None, settings, seed=0, threads=threads, device="cpu")
    # the first epoch includes one-off costs (allocation, kernel selection): use the rest
    per_epoch = [r["seconds"] for r in records]
    steps = n_images // batch_size
    seconds = np.median(per_epoch[1:]) if len(per_epoch) > 1 else per_epoch[0]
    return 2 * steps * batch_size / seconds, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--skip-demo", action="store_true")
    args = ap.parse_args()
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())["simclr"]
    paper = yaml.safe_load((ROOT / "config/presets/paper.yaml").read_text())["simclr"]
    runs = {
        f"default ({cfg['encoder']}, {cfg['image_size']} px, batch {cfg['batch_size']})": (
            cfg["encoder"],
            cfg["image_size"],
            cfg["batch_size"],
            256,
            4,
            cfg["in_chans"],
        ),
        # a few steps only: at 224 px the paper's encoder is a GPU job
        f"paper ({paper['encoder']}, {paper['image_size']} px, batch 32)": (
            paper["encoder"],
            paper["image_size"],
            32,
            64,
            2,
            paper["in_chans"],
        ),
    }
    for name, (enc, size, batch, n, epochs, chans) in runs.items():
        ips, wall = throughput(enc, size, batch, n, epochs, chans, args.cores)
        print(
            f"SimCLR training, {name}: {ips:.0f} images/s on {args.cores} threads "
            f"({wall:.0f} s measured)",
            flush=True,
        )
    if args.skip_demo:
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("Snakefile", "rules", "scripts", "config", "envs", "profiles", "resources"):
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(
                    src, work / name, ignore=shutil.ignore_patterns("demo", "__pycache__")
                )
            else:
                shutil.copy(src, work / name)
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", str(args.cores), "-q"],
            cwd=work,
            check=True,
        )
        wall = time.perf_counter() - t0
        print(f"whole demo run (snakemake --cores {args.cores}, fresh copy): {wall:.0f} s")
        for tsv in sorted((work / "results/demo/benchmarks").glob("*.tsv")):
            seconds = float(tsv.read_text().splitlines()[1].split("\t")[0])
            print(f"  {tsv.stem:<14}{seconds:7.1f} s")


if __name__ == "__main__":
    main()
