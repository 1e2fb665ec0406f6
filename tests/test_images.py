"""One-pass ion-image extraction against a brute-force reference, and the pixel math."""

import numpy as np
import pytest
from conftest import CONVERT, workflow_settings, write_small_imzml
from pyimzml.ImzMLParser import ImzMLParser

from msicoloc.images import (
    clip_hotspots,
    disjoint_layers,
    extract,
    normalise,
    otsu_threshold,
    tissue_mask,
    to_stack,
)
from msicoloc.spectra import SpectraFile, convert


def brute_force(path, peak_mz, tol_ppm):
    p = ImzMLParser(str(path))
    out = np.zeros((len(peak_mz), len(p.coordinates)))
    for i in range(len(p.coordinates)):
        mz, inten = p.getspectrum(i)
        for j, m in enumerate(peak_mz):
            lo, hi = m - m * tol_ppm * 1e-6, m + m * tol_ppm * 1e-6
            out[j, i] = inten[(mz >= lo) & (mz <= hi)].astype(float).sum()
    return out


@pytest.mark.parametrize("mode", ["processed", "continuous"])
@pytest.mark.parametrize("max_values", [5, 10_000_000])
def test_extract_equals_brute_force(tmp_path, mode, max_values):
    src = tmp_path / "d.imzML"
    _coords, spectra = write_small_imzml(src, mode=mode, seed=7)
    convert(src, tmp_path / "s.h5", CONVERT)
    all_mz = np.concatenate([s[0] for s in spectra])
    rng = np.random.default_rng(1)
    # peaks on real centroids (hits), between them (misses), and two overlapping windows
    peak_mz = np.sort(np.concatenate([rng.choice(all_mz, 25), rng.uniform(100, 900, 10)]))
    peak_mz = np.append(peak_mz, [peak_mz[5] * (1 + 3e-3)])
    tol = 4000.0  # wide windows, so that windows overlap and catch several centroids
    with SpectraFile(tmp_path / "s.h5") as sf:
        got = extract(sf, peak_mz, tol, max_values=max_values)
    ref = brute_force(src, peak_mz, tol)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)
    assert (ref > 0).sum() > 20  # the test exercises real hits


def test_windows_split_into_disjoint_layers():
    lo = np.array([0.0, 1.0, 2.5, 2.6, 10.0])
    hi = np.array([2.0, 3.0, 4.0, 5.0, 11.0])
    layers = disjoint_layers(lo, hi)
    seen = np.sort(np.concatenate(layers))
    np.testing.assert_array_equal(seen, np.arange(5))
    for ids in layers:
        order = ids[np.argsort(lo[ids])]
        assert np.all(lo[order][1:] > hi[order][:-1])
    assert len(layers) == 3  # [0,2], [1,3] overlap with [2.5,4] and [2.6,5]


def test_normalise_tic_and_rms():
    values = np.array([[2.0, 4.0, 0.0, 6.0]], dtype=np.float32)
    tic = np.array([1.0, 2.0, 0.0, 4.0])
    v = values.copy()
    normalise(v, "tic", tic, tic)
    # divided by TIC, times the median TIC (2.0); a pixel without signal is 0
    np.testing.assert_allclose(v, [[4.0, 4.0, 0.0, 3.0]])
    v = values.copy()
    normalise(v, "rms", tic, np.array([2.0, 2.0, 2.0, 2.0]))
    np.testing.assert_allclose(v, values)
    v = values.copy()
    normalise(v, "none", tic, tic)
    np.testing.assert_array_equal(v, values)


def test_clip_hotspots_at_quantile():
    values = np.vstack([np.arange(101, dtype=np.float32), np.full(101, 3, np.float32)])
    caps = clip_hotspots(values, 0.99)
    np.testing.assert_allclose(caps, [99.0, 3.0])
    assert values[0].max() == 99.0 and values[0, 50] == 50.0
    untouched = np.arange(5, dtype=np.float32)[None]
    clip_hotspots(untouched, None)
    np.testing.assert_array_equal(untouched, [[0, 1, 2, 3, 4]])


def test_tissue_mask_uses_otsu_only_on_bimodal_tic():
    rng = np.random.default_rng(0)
    shape = (20, 20)
    rows, cols = np.divmod(np.arange(400), 20)
    on = (rows - 10) ** 2 + (cols - 10) ** 2 < 50
    tic = np.where(on, rng.lognormal(10, 0.2, 400), rng.lognormal(5, 0.2, 400))
    mask, rule = tissue_mask(tic, rows, cols, shape, "auto")
    assert "Otsu" in rule and not rule.startswith("measured")
    np.testing.assert_array_equal(mask[rows, cols], on)
    unimodal = rng.lognormal(10, 0.3, 400)
    mask, rule = tissue_mask(unimodal, rows, cols, shape, "auto")
    assert mask.all() and rule.startswith("measured")
    mask, _ = tissue_mask(unimodal, rows, cols, shape, "otsu")
    assert 0 < mask.sum() < 400
    tic[3] = 0  # a pixel without signal is never tissue
    mask, _ = tissue_mask(tic, rows, cols, shape, "measured")
    assert mask.sum() == 399 and not mask[rows[3], cols[3]]


def test_otsu_separates_two_modes():
    values = np.concatenate([np.zeros(100), np.ones(100) * 10])
    thr, eff = otsu_threshold(values)
    assert 0 < thr < 10 and eff > 0.95


def test_to_stack_places_pixels():
    stack = to_stack(np.array([[1.0, 2.0]]), np.array([0, 1]), np.array([2, 0]), (2, 3))
    np.testing.assert_array_equal(stack[0], [[0, 0, 1], [2, 0, 0]])


def test_window_lookup_is_exact_at_edges():
    from msicoloc.images import WindowLookup, window_edges

    rng = np.random.default_rng(5)
    peaks = np.sort(rng.uniform(100, 1000, 300))
    peaks = np.append(peaks, peaks[10] * (1 + 5e-6))  # overlapping pair
    lo, hi = window_edges(peaks, 5.0)
    values = np.concatenate(
        [rng.uniform(90, 1010, 200_000), lo, hi, np.nextafter(lo, 0), np.nextafter(hi, 2000)]
    )
    w = WindowLookup(lo, hi)
    win = w.lookup(values)
    got = np.zeros(len(peaks))
    sure = win >= 0
    np.add.at(got, win[sure], 1)
    unsure = np.flatnonzero(win == -2)
    for _inside, ids in w.exact(values[unsure]):
        np.add.at(got, ids, 1)
    expected = np.array(
        [((values >= a) & (values <= b)).sum() for a, b in zip(lo, hi, strict=True)]
    )
    np.testing.assert_array_equal(got, expected)
    assert (win == -2).mean() < 0.05  # the exact path stays the exception


@pytest.mark.parametrize("mode", ["processed", "continuous"])
def test_blockwise_build_equals_the_whole_array_version(tmp_path, mode, monkeypatch):
    """ion_images.h5 built in blocks through a temporary file (bounded memory) holds exactly
    what the whole-array pipeline gives, and a small level that is its block average."""
    import h5py

    from msicoloc import images as im

    src = tmp_path / "d.imzML"
    _coords, _spectra = write_small_imzml(src, mode=mode, seed=3, shape=(12, 14))
    convert(src, tmp_path / "s.h5", CONVERT)
    peak_mz = np.sort(np.random.default_rng(0).uniform(150, 850, 9))
    settings = workflow_settings("ion_images", montage_max=4)
    with SpectraFile(tmp_path / "s.h5") as sf:
        # the whole-array reference
        raw = extract(sf, peak_mz, 3000.0)
        rows, cols = sf.pixels("row"), sf.pixels("col")
        tic, rms = sf.pixels("tic"), sf.pixels("rms")
        normalise(raw, settings.normalisation, tic, rms)
        mask, _ = tissue_mask(tic, rows, cols, sf.image_shape, settings.mask)
        on = mask[rows, cols]
        values = raw[:, on]
        caps = clip_hotspots(values, settings.hotspot_quantile)
        want = to_stack(values, rows[on], cols[on], sf.image_shape)
        # in blocks of 2 ions through a temporary file, and a small level of 4 x 4 blocks
        monkeypatch.setattr(im, "BLOCK_BYTES", 2 * 4 * sf.n_pixels)
        monkeypatch.setattr(im, "SMALL_SIDE", 4)
        out = tmp_path / "ion_images.h5"
        built = im.build_ion_images(sf, peak_mz, 3000.0, settings, out, max_values=50)
    got, _got_mz, got_mask = im.read_ion_images(out)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(built["clip_value"], caps)
    np.testing.assert_array_equal(got_mask, mask)
    assert not (tmp_path / "ion_images.h5.raw").exists() and not list(tmp_path.glob("*.tmp-*"))
    small, _, small_mask = im.read_ion_images(out, "small")
    assert small.shape == (9, 3, 4) and small_mask.shape == (3, 4)
    np.testing.assert_allclose(small[4], im.block_reduce(want[4].astype(float), 4), rtol=1e-6)
    with h5py.File(out) as f:
        assert f.attrs["small_factor"] == 4 and f["images"].compression == "lzf"
    assert list(built["preview"][0]) == [0, 3, 5, 8]
