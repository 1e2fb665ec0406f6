"""Metrics against hand-computed examples; isotope detection on planted pairs."""

import numpy as np
import pandas as pd
import pytest
from conftest import CONVERT, workflow_settings

from msicoloc.metrics import (
    C13_SHIFT,
    find_isotopes,
    hungarian_accuracy,
    isotopic_recall,
    match_annotations,
    purity,
    scores,
)

# 8 items, 3 classes; clusters: {0,1,2 | a a b}, {3,4,5 | b b c}, {6,7 | c a}
TRUE = ["a", "a", "b", "b", "b", "c", "c", "a"]
PRED = [0, 0, 0, 1, 1, 1, 2, 2]


def test_purity_by_hand():
    # majorities: cluster 0 -> a (2), cluster 1 -> b (2), cluster 2 -> tie c/a (1): 5 / 8
    assert purity(TRUE, PRED) == pytest.approx(5 / 8)
    assert purity(TRUE, np.arange(8)) == 1.0  # singletons are "pure": why purity flatters


def test_hungarian_by_hand():
    # best one-to-one: 0->a (2), 1->b (2), 2->c (1) = 5 / 8
    assert hungarian_accuracy(TRUE, PRED) == pytest.approx(5 / 8)
    # all in one cluster: one class matched, 3 of 8
    assert hungarian_accuracy(TRUE, [0] * 8) == pytest.approx(3 / 8)
    # 8 singletons: only 3 clusters can be matched, 3 of 8
    assert hungarian_accuracy(TRUE, np.arange(8)) == pytest.approx(3 / 8)
    assert hungarian_accuracy(TRUE, [5, 5, 7, 7, 7, 9, 9, 5]) == 1.0  # names don't matter


def test_ari_nmi_by_hand():
    # two items per class, clusters split each class between them:
    true, pred = [0, 0, 1, 1], [0, 1, 0, 1]
    s = scores(true, pred)
    # ARI: index = sum C(n_ij,2) = 0; expected = (2*1)*(2*1)/C(4,2) = 4/6; max = (2+2)/2 = 2
    assert s["ari"] == pytest.approx((0 - 4 / 6) / (2 - 4 / 6))
    assert s["nmi"] == pytest.approx(0.0, abs=1e-12)  # independent: no shared information
    perfect = scores(TRUE, [1, 1, 2, 2, 2, 3, 3, 1])
    assert perfect == {"purity": 1.0, "hungarian_accuracy": 1.0, "ari": 1.0, "nmi": 1.0}


def test_match_annotations_nearest_within_ppm():
    peaks = np.array([100.0, 200.0005, 200.0009, 300.1])
    labels = match_annotations(peaks, np.array([200.0, 100.0002]), np.array(["x", "y"]), 5.0)
    # 100.0 is 2 ppm from 100.0002; 200.0005 is 2.5 ppm from 200 and closer than 200.0009
    assert labels.tolist() == ["y", "x", None, None]


def planted_isotopes(seed=0):
    rng = np.random.default_rng(seed)
    base = rng.random((5, 16, 16))
    mz, images, truth = [], [], []
    for k, m in enumerate([300.1, 420.2, 555.3, 700.4]):
        for order in range(3 if k == 0 else 2):
            mz.append(m + order * C13_SHIFT * (1 + 1e-6))
            images.append(base[k] * (0.3**order) + rng.normal(0, 0.01, (16, 16)))
            truth.append((len(mz) - 1, mz[-1], order))
    # a peak one 13C step above 555.3 whose image is unrelated: not an isotope
    mz.append(555.3 + 2 * C13_SHIFT)
    images.append(base[4])
    return np.array(mz), np.array(images), truth


def test_find_isotopes_recovers_planted_chains_and_rejects_uncorrelated():
    mz, images, truth = planted_isotopes()
    iso = find_isotopes(mz, images, tolerance_ppm=5.0, min_correlation=0.5)
    expected = {(i, order) for i, _, order in truth if order > 0}
    assert set(zip(iso["index"], iso["order"], strict=True)) == expected
    assert (iso.loc[iso.order == 2, "mono_mz"] == 300.1).all()  # M+2 chained to M via M+1
    assert len(mz) - 1 not in iso["index"].tolist()
    assert (iso.ppm_error.abs() <= 5).all() and (iso.correlation >= 0.5).all()


def test_isotopic_recall_by_hand():
    iso = pd.DataFrame({"index": [1, 2, 4], "mono_index": [0, 0, 3]})
    labels = np.array([7, 7, 8, 5, 5])  # 1 with 0: yes; 2 with 0: no; 4 with 3: yes
    assert isotopic_recall(iso, labels) == pytest.approx(2 / 3)
    assert np.isnan(isotopic_recall(iso.iloc[:0], labels))


def test_demo_isotope_pairs_are_found(tmp_path):
    """The demo's planted M+1/M+2 pairs, through the real convert/peaks/extract path."""
    from msicoloc.images import extract, normalise, tissue_mask, to_stack
    from msicoloc.peaks import pick_peaks
    from msicoloc.spectra import SpectraFile, convert
    from msicoloc.synth import DEMO_SIZE, make_dataset

    ions = make_dataset(tmp_path / "d.imzML", tmp_path / "a.tsv", seed=0, **DEMO_SIZE)
    convert(tmp_path / "d.imzML", tmp_path / "s.h5", CONVERT)
    with SpectraFile(tmp_path / "s.h5") as sf:
        mz, inten, count, kind = sf.mean_spectrum()
        settings = workflow_settings("peaks")
        peaks = pick_peaks(mz, inten, count, sf.n_pixels, settings, kind=kind, tolerance_ppm=10.0)
        peaks = peaks.mz.to_numpy()
        values = extract(sf, peaks, 10.0)
        tic, rows, cols = sf.pixels("tic"), sf.pixels("row"), sf.pixels("col")
        shape = sf.image_shape
    normalise(values, "tic", tic, tic)
    mask, _ = tissue_mask(tic, rows, cols, shape)
    images = to_stack(values, rows, cols, shape)
    iso = find_isotopes(peaks, images, mask)

    def nearest(m):
        j = int(np.argmin(np.abs(peaks - m)))
        return j if abs(peaks[j] - m) / m * 1e6 <= 5 else None

    planted = {(nearest(i.mz), nearest(i.isotope_of)) for i in ions if i.isotope_of is not None}
    assert all(None not in pair for pair in planted)  # every planted ion was picked
    found = set(zip(iso["index"], iso["mono_index"], strict=True))
    assert len(planted) >= 20
    assert len(planted & found) / len(planted) >= 0.95
    assert found <= planted  # every pair reported is a planted one
