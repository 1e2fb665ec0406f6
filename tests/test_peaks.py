"""Peak picking: known peaks on a synthetic mean spectrum, and the demo's true peaks."""

import numpy as np
import pandas as pd
import pytest

from msicoloc.io import LogGridAccumulator, SpectraFile, convert
from msicoloc.peaks import pick_peaks, suppress_neighbours


def centroid_histogram(true_mz, n_pixels=2000, share=None, seed=0, spread_ppm=3.0):
    """Mean spectrum of centroided data: each pixel has each ion with jitter, plus noise."""
    rng = np.random.default_rng(seed)
    share = np.ones(len(true_mz)) if share is None else np.asarray(share)
    here = rng.random((n_pixels, len(true_mz))) < share
    ions = np.broadcast_to(true_mz, here.shape)[here]
    ions = ions * (1 + rng.normal(0, spread_ppm, len(ions)) * 1e-6)
    noise = rng.uniform(100, 1000, 60 * n_pixels)
    acc = LogGridAccumulator(bin_ppm=1.0)
    acc.add(
        np.concatenate([ions, noise]),
        np.concatenate([rng.uniform(50, 150, len(ions)), rng.exponential(5, len(noise))]),
    )
    return acc.centers(), acc.sum / n_pixels, acc.count, n_pixels


def match(found, true, ppm=5.0):
    d = np.abs(found[:, None] - true[None, :]) / true[None, :] * 1e6
    return (d.min(axis=0) <= ppm).mean(), (d.min(axis=1) <= ppm).mean()


def test_finds_known_peaks_and_nothing_else():
    true = np.array([150.1, 233.3, 400.0, 401.00336, 655.5, 900.9])
    mz, inten, count, n = centroid_histogram(true)
    table = pick_peaks(mz, inten, count, n)
    recall, precision = match(table.mz.to_numpy(), true, ppm=1.0)
    assert recall == 1.0 and precision == 1.0
    assert list(table.columns) == ["mz", "intensity", "snr", "pixel_share"]
    assert (table.pixel_share > 0.95).all() and (table.snr > 5).all()


def test_pixel_share_filter_and_value():
    true = np.array([300.0, 500.0])
    mz, inten, count, n = centroid_histogram(true, share=[0.5, 0.004])
    table = pick_peaks(mz, inten, count, n, min_pixel_share=0.01)
    assert len(table) == 1 and abs(table.mz[0] - 300) < 3e-4
    assert table.pixel_share[0] == pytest.approx(0.5, abs=0.05)


def test_min_separation_keeps_the_higher():
    kept = suppress_neighbours(np.array([500.0, 500.003, 600.0]), np.array([1.0, 5.0, 2.0]), 10)
    np.testing.assert_array_equal(kept, [1, 2])


def test_range_and_top_n():
    true = np.array([200.0, 300.0, 400.0, 500.0])
    mz, inten, count, n = centroid_histogram(true)
    table = pick_peaks(mz, inten, count, n, mz_range=(250, None))
    assert np.allclose(table.mz, [300, 400, 500], atol=1e-3)
    table = pick_peaks(mz, inten, count, n, max_peaks=2)
    assert len(table) == 2 and table.mz.is_monotonic_increasing


def test_snr_threshold_removes_everything_when_high():
    mz, inten, count, n = centroid_histogram(np.array([300.0]))
    assert pick_peaks(mz, inten, count, n, snr=1e12).empty


def test_demo_true_peaks_are_found(tmp_path):
    from msicoloc.synth import make_demo

    imzml, ann = tmp_path / "demo.imzML", tmp_path / "ann.tsv"
    make_demo(imzml, ann, seed=0)
    convert(imzml, tmp_path / "s.h5")
    with SpectraFile(tmp_path / "s.h5") as sf:
        mz, inten, count, kind = sf.mean_spectrum()
        table = pick_peaks(mz, inten, count, sf.n_pixels, kind=kind)
    true = pd.read_csv(ann, sep="\t").mz.to_numpy()
    recall, precision = match(table.mz.to_numpy(), true, ppm=5.0)
    assert recall >= 0.95, recall
    assert precision >= 0.9, precision
