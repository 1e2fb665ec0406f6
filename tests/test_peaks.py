"""Peak picking: known peaks on a synthetic mean spectrum, and the demo's true peaks."""

import numpy as np
import pandas as pd
import pytest
from conftest import CONVERT, workflow_settings

from msicoloc.peaks import data_window_ppm, pick_peaks, suppress_neighbours
from msicoloc.settings import replace
from msicoloc.spectra import LogGridAccumulator, SpectraFile, convert


def centroid_histogram(true_mz, n_pixels=2000, share=None, seed=0, spread_ppm=3.0, noise=60):
    """Mean spectrum of centroided data: each pixel has each ion with jitter, plus ``noise``
    noise centroids."""
    rng = np.random.default_rng(seed)
    share = np.ones(len(true_mz)) if share is None else np.asarray(share)
    here = rng.random((n_pixels, len(true_mz))) < share
    ions = np.broadcast_to(true_mz, here.shape)[here]
    ions = ions * (1 + rng.normal(0, spread_ppm, len(ions)) * 1e-6)
    noise = rng.uniform(100, 1000, noise * n_pixels)
    acc = LogGridAccumulator(bin_ppm=1.0)
    acc.add(
        np.concatenate([ions, noise]),
        np.concatenate([rng.uniform(50, 150, len(ions)), rng.exponential(5, len(noise))]),
    )
    return acc.centers(), acc.sum / n_pixels, acc.count, n_pixels


def match(found, true, ppm=5.0):
    d = np.abs(found[:, None] - true[None, :]) / true[None, :] * 1e6
    return (d.min(axis=0) <= ppm).mean(), (d.min(axis=1) <= ppm).mean()


PEAKS = workflow_settings("peaks")


def pick(mz, inten, count, n, *, kind="ppm_grid", mz_range=(None, None), **changes):
    """pick_peaks with the workflow's settings and ``changes`` (ion-image window 10 ppm)."""
    lo, hi = mz_range
    settings = replace(PEAKS, mz_min=lo, mz_max=hi, **changes)
    return pick_peaks(mz, inten, count, n, settings, kind=kind, tolerance_ppm=10.0)


def test_finds_known_peaks_and_nothing_else():
    true = np.array([150.1, 233.3, 400.0, 401.00336, 655.5, 900.9])
    mz, inten, count, n = centroid_histogram(true)
    table = pick(mz, inten, count, n)
    recall, precision = match(table.mz.to_numpy(), true, ppm=1.0)
    assert recall == 1.0 and precision == 1.0
    assert list(table.columns) == ["mz", "intensity", "snr", "pixel_share"]
    assert (table.pixel_share > 0.95).all() and (table.snr > 5).all()


def test_pixel_share_filter_and_value():
    true = np.array([300.0, 500.0])
    mz, inten, count, n = centroid_histogram(true, share=[0.5, 0.004])
    table = pick(mz, inten, count, n, min_pixel_share=0.01)
    assert len(table) == 1 and abs(table.mz[0] - 300) < 3e-4
    assert table.pixel_share[0] == pytest.approx(0.5, abs=0.05)


def test_min_separation_keeps_the_higher():
    kept = suppress_neighbours(np.array([500.0, 500.003, 600.0]), np.array([1.0, 5.0, 2.0]), 10)
    np.testing.assert_array_equal(kept, [1, 2])


def test_range_and_top_n():
    true = np.array([200.0, 300.0, 400.0, 500.0])
    mz, inten, count, n = centroid_histogram(true)
    table = pick(mz, inten, count, n, mz_range=(250, None))
    assert np.allclose(table.mz, [300, 400, 500], atol=1e-3)
    table = pick(mz, inten, count, n, max_peaks=2)
    assert len(table) == 2 and table.mz.is_monotonic_increasing


def test_without_noise_centroids_the_pixel_share_decides(caplog):
    """A thresholded export has no noise centroids: every maximum of the mean spectrum is an
    ion, so their spread says nothing about noise. All 40 ions shared by enough pixels are
    found (the SNR unknown), the rare one is not, and the log says why."""
    rng = np.random.default_rng(1)
    true = np.sort(rng.uniform(150, 950, 40))
    share = np.r_[rng.uniform(0.05, 1.0, 39), 0.004]  # the last: too few pixels
    mz, inten, count, n = centroid_histogram(true, share=share, noise=0)
    with caplog.at_level("WARNING"):
        table = pick(mz, inten, count, n)
    recall, precision = match(table.mz.to_numpy(), true[:-1], ppm=1.0)
    assert recall == 1.0 and precision == 1.0
    assert table.snr.isna().all()
    assert "picked by pixel share alone" in caplog.text
    # a few noise centroids suffice to measure the noise again: the same ions, with an SNR
    mz, inten, count, n = centroid_histogram(true, share=share, noise=2)
    table = pick(mz, inten, count, n)
    assert match(table.mz.to_numpy(), true[:-1], ppm=1.0) == (1.0, 1.0)
    assert (table.snr > 5).all()


def test_snr_threshold_removes_everything_when_high():
    mz, inten, count, n = centroid_histogram(np.array([300.0]))
    assert pick(mz, inten, count, n, snr=1e12).empty


def test_demo_true_peaks_are_found(tmp_path):
    from msicoloc.synth import make_demo

    imzml, ann = tmp_path / "demo.imzML", tmp_path / "ann.tsv"
    make_demo(imzml, ann, seed=0)
    convert(imzml, tmp_path / "s.h5", CONVERT)
    with SpectraFile(tmp_path / "s.h5") as sf:
        mz, inten, count, kind = sf.mean_spectrum()
        table = pick(mz, inten, count, sf.n_pixels, kind=kind)
    true = pd.read_csv(ann, sep="\t").mz.to_numpy()
    recall, precision = match(table.mz.to_numpy(), true, ppm=5.0)
    assert recall >= 0.95, recall
    assert precision >= 0.9, precision


def tof_spectrum(seed, n_peaks=138, fwhm=0.45):
    """A low-resolution profile spectrum as a TOF gives it: 629 values from m/z 700 to 900
    (0.32 Da apart), lipid-like peaks near every nominal mass, a baseline and noise."""
    rng = np.random.default_rng(seed)
    mz = np.linspace(700, 900, 629)
    nominal = rng.choice(np.arange(702, 898), n_peaks, replace=False)
    centres = np.sort(nominal + rng.uniform(0.45, 0.75, n_peaks))
    heights = np.exp(rng.normal(0, 1.2, n_peaks))
    profile = np.exp(-0.5 * ((mz[None] - centres[:, None]) / (fwhm / 2.355)) ** 2)
    spectrum = (heights[:, None] * profile).sum(axis=0)
    level = np.median(heights)
    spectrum += 0.02 * level * (1 + 0.5 * np.sin(mz / 7))
    spectrum += rng.normal(0, 0.01 * level, mz.size).clip(0)
    return mz, spectrum, centres


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_low_resolution_profile_spectra_get_their_peaks(seed):
    """Bug: on TOF-class data the ppm settings found 8-11 of 138 peaks (a real crop: 32 of
    138). The window follows the data's sampling and the noise comes from the valleys."""
    mz, spectrum, centres = tof_spectrum(seed)
    table = pick(mz, spectrum, np.full(mz.size, 400), 441, kind="native")
    found = table["mz"].to_numpy()
    recall = (np.abs(centres[:, None] - found[None]).min(axis=1) < 0.3).mean()
    false = (np.abs(found[:, None] - centres[None]).min(axis=1) >= 0.3).sum()
    assert recall >= 0.7 and false == 0, (recall, false)


def test_data_window_follows_coarse_native_axes_only():
    coarse = np.linspace(700, 900, 629)  # 0.32 Da: 354-454 ppm
    assert data_window_ppm(coarse, "native", 10.0) == pytest.approx(1.5 * 0.318 / 700 * 1e6, 0.01)
    fine = np.geomspace(700, 900, 200_000)  # 1.3 ppm steps
    assert data_window_ppm(fine, "native", 10.0) == 10.0
    assert data_window_ppm(coarse, "ppm_grid", 10.0) == 10.0  # centroid histograms: ppm
