"""Benchmark: imzML -> ion images, against the floor any reader pays and against pyimzml.

Writes a synthetic processed imzML (default 100,000 pixels x ~800 centroids), then measures
in one run, all with the files in the page cache:

(a) floor: ``ImzMLParser(path)`` (XML) + ``numpy.fromfile`` of the whole .ibd;
(b) the workflow's scripts: convert + peaks (top 500) + ion_images, as subprocesses;
(c) pyimzml's ``getionimage`` for a few ions, extrapolated to the same number of ions.

Prints times, the ratios (b)/(a) and (c)/(b), and the peak RSS of (b)'s steps.
Run:  python bench/extract.py [--pixels 100000] [--workdir /tmp/msibench]
"""

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from msicoloc.synth import write_imzml

ROOT = Path(__file__).resolve().parents[1]


def synthetic_spectra(n_pixels, n_ions, n_noise, rng):
    """Centroid spectra: each ion present with a pixel-dependent probability, plus noise."""
    ion_mz = np.sort(rng.uniform(150, 1000, n_ions))
    # spacing check: ions closer than 30 ppm would merge into one peak
    keep = np.concatenate([[True], np.diff(ion_mz) / ion_mz[1:] > 30e-6])
    ion_mz = ion_mz[keep]
    presence = rng.uniform(0.6, 1.0, len(ion_mz))
    abundance = rng.lognormal(3, 1, len(ion_mz))
    for _ in range(n_pixels):
        here = rng.random(len(ion_mz)) < presence
        mz = ion_mz[here] * (1 + rng.normal(0, 2e-6, here.sum()))
        inten = abundance[here] * rng.uniform(0.5, 1.5, here.sum())
        noise_mz = rng.uniform(150, 1000, n_noise)
        mz = np.concatenate([mz, noise_mz])
        inten = np.concatenate([inten, rng.exponential(0.5, n_noise)])
        order = np.argsort(mz)
        yield mz[order], inten[order].astype(np.float32)


def timed(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pixels", type=int, default=100_000)
    ap.add_argument("--ions", type=int, default=500, help="ion images to extract")
    ap.add_argument("--reference-ions", type=int, default=20, help="ions timed with pyimzml")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/msibench"))
    args = ap.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    imzml = work / f"bench_{args.pixels}.imzML"
    side = int(np.ceil(np.sqrt(args.pixels)))
    if not imzml.exists():
        rng = np.random.default_rng(0)
        coords = np.array([(i % side + 1, i // side + 1) for i in range(args.pixels)])
        t0 = time.perf_counter()
        write_imzml(imzml, coords, synthetic_spectra(args.pixels, 750, 200, rng))
        print(f"wrote {imzml} in {time.perf_counter() - t0:.0f} s")
    ibd = imzml.with_suffix(".ibd")
    print(f"data: {args.pixels} pixels, .ibd {ibd.stat().st_size / 1e9:.2f} GB")
    np.fromfile(ibd, dtype=np.uint8)  # warm the page cache so every contender reads from RAM

    from pyimzml.ImzMLParser import ImzMLParser, getionimage

    t0 = time.perf_counter()
    parser = ImzMLParser(str(imzml))
    t_parse = time.perf_counter() - t0
    t0 = time.perf_counter()
    raw = np.fromfile(ibd, dtype=np.uint8)
    t_read = time.perf_counter() - t0
    del raw
    floor = t_parse + t_read
    print(f"(a) floor: parse {t_parse:.1f} s + fromfile {t_read:.1f} s = {floor:.1f} s")

    py = sys.executable
    spectra, peaks = work / "spectra.h5", work / "peaks.tsv"
    steps = {
        "convert": [py, "scripts/convert.py", "--imzml", imzml, "--spectra", spectra],
        "peaks": [
            py,
            "scripts/peaks.py",
            "--spectra",
            spectra,
            "--peaks",
            peaks,
            "--max-peaks",
            str(args.ions),
        ],
        "ion_images": [
            py,
            "scripts/ion_images.py",
            "--spectra",
            spectra,
            "--peaks",
            peaks,
            "--images",
            work / "ion_images.h5",
            "--montage-png",
            work / "m.png",
        ],
    }
    times = {name: timed([str(c) for c in cmd]) for name, cmd in steps.items()}
    t_ours = sum(times.values())
    rss_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
    n_ions = len(np.loadtxt(peaks, skiprows=1, ndmin=2))
    detail = ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
    print(f"(b) workflow: {t_ours:.1f} s for {n_ions} ion images ({detail})")

    mzs = np.loadtxt(peaks, skiprows=1, usecols=0)[: args.reference_ions]
    t0 = time.perf_counter()
    for mz in mzs:
        getionimage(parser, mz, tol=mz * 10e-6)
    t_ref = (time.perf_counter() - t0) / len(mzs) * n_ions
    print(
        f"(c) pyimzml getionimage: {t_ref:.0f} s for {n_ions} ions (extrapolated from {len(mzs)})"
    )
    print(f"ratio (b)/(a) = {t_ours / floor:.2f}   (target <= 3)")
    print(f"ratio (c)/(b) = {t_ref / t_ours:.1f}   (target >= 30)")
    print(f"peak RSS of (b) = {rss_gb:.2f} GB   (target < 1.5)")


if __name__ == "__main__":
    main()
