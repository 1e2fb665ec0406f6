"""Benchmark: the whole workflow on a whole-slide-sized data set, step by step.

Writes a processed imzML of the given size quickly (default 2,000,000 pixels, 2,000 ions; a
few hundred centroids per pixel, a third of them noise), whose ions follow known classes of smooth spatial patterns
at several scales (blobs of 3 to 50 pixels) with counting noise, runs the workflow on it and
prints, per step, wall time and peak RSS (from Snakemake's benchmark files), the scores of
every method, and the ratio of `convert` to the floor any reader pays (the XML parse by
pyimzml + reading the .ibd once).

Run:  python bench/scale.py [--pixels 2000000] [--ions 2000] [--classes 15] [--cores 2]
The data go to bench/work/scale/, results to results/scale_{pixels}/.
"""

import argparse
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work" / "scale"

HEADER = """<?xml version="1.0" encoding="ISO-8859-1"?>
<mzML xmlns="http://psi.hupo.org/ms/mzml" version="1.1">
  <cvList count="3">
    <cv id="MS" fullName="Proteomics Standards Initiative Mass Spectrometry Ontology" version="3.65.0" uri="http://psidev.cvs.sourceforge.net/*checkout*/psidev/psi/psi-ms/mzML/controlledVocabulary/psi-ms.obo"/>
    <cv id="UO" fullName="Unit Ontology" version="12:10:2011" uri="http://obo.cvs.sourceforge.net/*checkout*/obo/obo/ontology/phenotype/unit.obo"/>
    <cv id="IMS" fullName="Imaging MS Ontology" version="0.9.1" uri="http://www.maldi-msi.org/download/imzml/imagingMS.obo"/>
  </cvList>
  <fileDescription>
    <fileContent>
      <cvParam cvRef="MS" accession="MS:1000579" name="MS1 spectrum" value=""/>
      <cvParam cvRef="MS" accession="MS:1000127" name="centroid spectrum" value=""/>
      <cvParam cvRef="IMS" accession="IMS:1000031" name="processed" value=""/>
      <cvParam cvRef="IMS" accession="IMS:1000080" name="universally unique identifier" value="{{{uuid}}}"/>
    </fileContent>
  </fileDescription>
  <referenceableParamGroupList count="2">
    <referenceableParamGroup id="mzArray">
      <cvParam cvRef="MS" accession="MS:1000576" name="no compression" value=""/>
      <cvParam cvRef="MS" accession="MS:1000514" name="m/z array" unitCvRef="MS" unitAccession="MS:1000040" unitName="m/z"/>
      <cvParam cvRef="MS" accession="MS:1000523" name="64-bit float" value=""/>
      <cvParam cvRef="IMS" accession="IMS:1000101" name="external data" value="true"/>
    </referenceableParamGroup>
    <referenceableParamGroup id="intensityArray">
      <cvParam cvRef="MS" accession="MS:1000521" name="32-bit float" value=""/>
      <cvParam cvRef="MS" accession="MS:1000515" name="intensity array" unitCvRef="MS" unitAccession="MS:1000131" unitName="number of detector counts"/>
      <cvParam cvRef="MS" accession="MS:1000576" name="no compression" value=""/>
      <cvParam cvRef="IMS" accession="IMS:1000101" name="external data" value="true"/>
    </referenceableParamGroup>
  </referenceableParamGroupList>
  <softwareList count="1">
    <software id="scale" version="1"><cvParam cvRef="MS" accession="MS:1000799" name="custom unreleased software tool" value="bench/scale.py"/></software>
  </softwareList>
  <scanSettingsList count="1">
    <scanSettings id="scanSettings1">
      <cvParam cvRef="IMS" accession="IMS:1000042" name="max count of pixels x" value="{width}"/>
      <cvParam cvRef="IMS" accession="IMS:1000043" name="max count of pixels y" value="{height}"/>
    </scanSettings>
  </scanSettingsList>
  <instrumentConfigurationList count="1"><instrumentConfiguration id="IC1"/></instrumentConfigurationList>
  <dataProcessingList count="1">
    <dataProcessing id="export"><processingMethod order="0" softwareRef="scale"><cvParam cvRef="MS" accession="MS:1000530" name="file format conversion" value=""/></processingMethod></dataProcessing>
  </dataProcessingList>
  <run defaultInstrumentConfigurationRef="IC1" id="scale">
    <spectrumList count="{count}" defaultDataProcessingRef="export">
"""
SPECTRUM = (
    '<spectrum defaultArrayLength="0" id="spectrum={i}" index="{i}"><scanList count="1"><scan>'
    '<cvParam accession="IMS:1000050" cvRef="IMS" name="position x" value="{x}"/>'
    '<cvParam accession="IMS:1000051" cvRef="IMS" name="position y" value="{y}"/>'
    '</scan></scanList><binaryDataArrayList count="2">'
    '<binaryDataArray encodedLength="0"><referenceableParamGroupRef ref="mzArray"/>'
    '<cvParam accession="IMS:1000103" cvRef="IMS" name="external array length" value="{n}"/>'
    '<cvParam accession="IMS:1000104" cvRef="IMS" name="external encoded length" value="{nm}"/>'
    '<cvParam accession="IMS:1000102" cvRef="IMS" name="external offset" value="{om}"/>'
    "<binary/></binaryDataArray>"
    '<binaryDataArray encodedLength="0"><referenceableParamGroupRef ref="intensityArray"/>'
    '<cvParam accession="IMS:1000103" cvRef="IMS" name="external array length" value="{n}"/>'
    '<cvParam accession="IMS:1000104" cvRef="IMS" name="external encoded length" value="{ni}"/>'
    '<cvParam accession="IMS:1000102" cvRef="IMS" name="external offset" value="{oi}"/>'
    "<binary/></binaryDataArray></binaryDataArrayList></spectrum>\n"
)
FOOTER = "    </spectrumList>\n  </run>\n</mzML>\n"


def patterns(shape, n_classes, rng):
    """Smooth random class patterns in [0, 1] at several spatial scales (3-50 pixels)."""
    scales = np.geomspace(3, 50, n_classes)
    out = np.empty((n_classes, *shape), np.float32)
    for k, sigma in enumerate(scales):
        field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
        field = (field - field.mean()) / (field.std() + 1e-12)
        out[k] = 1 / (1 + np.exp(-3 * field))  # contrasty blobs of that size
    return out


def write_data(imzml, annotations, height, width, n_ions, n_classes, per_pixel, seed):
    """A processed imzML whose ion i follows class pattern i % n_classes (Poisson counts)."""
    rng = np.random.default_rng(seed)
    pats = patterns((height, width), n_classes, rng)
    mz = np.sort(rng.uniform(300, 1000, n_ions * 2))
    mz = mz[np.concatenate([[True], np.diff(mz) / mz[1:] > 40e-6])][:n_ions]
    n_ions = len(mz)
    classes = np.arange(n_ions) % n_classes
    abundance = rng.lognormal(0, 0.7, n_ions)
    noise = per_pixel / 2  # noise centroids per pixel
    # expected centroids per pixel: sum of 1 - exp(-lambda) ~ per_pixel
    mean_pattern = pats.mean(axis=(1, 2))[classes]
    scale = per_pixel / n_ions / max(float(np.mean(abundance * mean_pattern)), 1e-9)
    lam_ion = (abundance * scale).astype(np.float32)
    ibd = imzml.with_suffix(".ibd")
    file_uuid = uuid.uuid4()
    offset = 16
    with open(ibd, "wb") as fb, open(str(imzml) + ".body", "w") as fx:
        fb.write(file_uuid.bytes)
        index = 1
        for y in range(height):
            lam = lam_ion[:, None] * pats[classes, y, :]  # (ions, width)
            counts = rng.poisson(lam).T  # (width, ions): pixels by ions, ions in m/z order
            pix, ion = np.nonzero(counts)
            mzs = mz[ion] * (1 + rng.normal(0, 2e-6, len(ion)))
            inten = counts[pix, ion].astype(np.float32)
            # noise centroids, as every instrument gives: scattered m/z, one or two counts
            n_noise = rng.poisson(noise, width)
            noise_pix = np.repeat(np.arange(width), n_noise)
            pix = np.concatenate([pix, noise_pix])
            mzs = np.concatenate([mzs, rng.uniform(300, 1000, len(noise_pix))])
            inten = np.concatenate([inten, rng.integers(1, 3, len(noise_pix)).astype(np.float32)])
            order = np.lexsort((mzs, pix))
            pix, mzs, inten = pix[order], mzs[order], inten[order]
            lengths = np.bincount(pix, minlength=width)
            starts = np.concatenate([[0], np.cumsum(lengths)])
            parts, xml = [], []
            for x in range(width):
                a, b = starts[x], starts[x + 1]
                n = int(b - a)
                parts += [mzs[a:b].tobytes(), inten[a:b].tobytes()]
                xml.append(
                    SPECTRUM.format(
                        i=index,
                        x=x + 1,
                        y=y + 1,
                        n=n,
                        nm=8 * n,
                        om=offset,
                        ni=4 * n,
                        oi=offset + 8 * n,
                    )
                )
                offset += 12 * n
                index += 1
            fb.write(b"".join(parts))
            fx.write("".join(xml))
    with open(imzml, "w") as f:
        f.write(
            HEADER.format(
                uuid=str(file_uuid).upper(), width=width, height=height, count=height * width
            )
        )
        with open(str(imzml) + ".body") as body:
            while chunk := body.read(1 << 24):
                f.write(chunk)
        f.write(FOOTER)
    Path(str(imzml) + ".body").unlink()
    pd.DataFrame({"mz": mz, "label": [f"class_{c:02d}" for c in classes]}).to_csv(
        annotations, sep="\t", index=False, float_format="%.6f"
    )


def floor_seconds(imzml):
    """The floor any reader pays: pyimzml's XML parse + reading the .ibd once."""
    from pyimzml.ImzMLParser import ImzMLParser

    t0 = time.perf_counter()
    ImzMLParser(str(imzml))
    with open(imzml.with_suffix(".ibd"), "rb") as f:
        while f.read(1 << 26):
            pass
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pixels", type=int, default=2_000_000)
    ap.add_argument("--ions", type=int, default=2000)
    ap.add_argument("--classes", type=int, default=15)
    ap.add_argument("--per-pixel", type=int, default=300, help="centroids per pixel (mean)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    height = int(np.sqrt(args.pixels * 6 / 7))  # 6:7, as the 600 x 700 section
    width = round(args.pixels / height)
    name = f"scale_{height * width}"
    WORK.mkdir(parents=True, exist_ok=True)
    imzml, ann = WORK / f"{name}.imzML", WORK / f"{name}_annotations.tsv"
    if not imzml.exists():
        t0 = time.perf_counter()
        write_data(imzml, ann, height, width, args.ions, args.classes, args.per_pixel, args.seed)
        print(f"wrote {height} x {width} pixels in {time.perf_counter() - t0:.0f} s")
    ibd = imzml.with_suffix(".ibd")
    print(
        f"data: {height * width:,} pixels, .ibd {ibd.stat().st_size / 1e9:.2f} GB, "
        f"XML {imzml.stat().st_size / 1e9:.2f} GB"
    )
    sheet, config = WORK / f"{name}.tsv", WORK / f"{name}.yaml"
    sheet.write_text(
        f"dataset\timzml\tannotations\tn_clusters\n{name}\t{imzml}\t{ann}\t{args.classes}\n"
    )
    config.write_text(f"datasets: {sheet}\n")
    t0 = time.perf_counter()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            f"results/{name}/report.html",  # before --configfile, which takes several files
            "--cores",
            str(args.cores),
            "--configfile",
            str(config),
        ],
        cwd=ROOT,
    )
    total = time.perf_counter() - t0
    if run.returncode:
        sys.exit(f"the workflow failed (see results/{name}/logs/)")
    rows = []
    for path in sorted((ROOT / "results" / name / "benchmarks").glob("*.tsv")):
        b = pd.read_csv(path, sep="\t")
        rows.append((path.stem, float(b["s"].mean()), float(b["max_rss"].max()) / 1024))
    steps = pd.DataFrame(rows, columns=["step", "wall s", "peak RSS GB"])
    print(f"\nworkflow: {total / 60:.1f} min on {args.cores} cores\n")
    print(steps.to_string(index=False, float_format="%.2f"))
    floor = floor_seconds(imzml)
    convert = steps.set_index("step").loc["convert", "wall s"]
    print(f"\nconvert / floor (XML parse + .ibd read, {floor:.1f} s): {convert / floor:.2f}")
    metrics = json.loads((ROOT / "results" / name / "metrics.json").read_text())
    print("\nHungarian accuracy against the known classes:")
    for key, row in metrics["methods"].items():
        nonempty = sum(1 for s in row["cluster_sizes"] if s > 0)
        print(
            f"  {metrics['method_names'].get(key, key):34s} "
            f"{row.get('hungarian_accuracy', float('nan')):.3f}   non-empty {nonempty}"
        )


if __name__ == "__main__":
    main()
