"""Tests of the synthetic data generator: the imzML it writes and the data it simulates."""

from __future__ import annotations

import hashlib
import uuid
import weakref
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from conftest import run_script
from pyimzml.ImzMLParser import ImzMLParser

from msicoloc import synth

NS = "{http://psi.hupo.org/ms/mzml}"


def _cv_value(root: ET.Element, accession: str) -> str | None:
    node = root.find(f".//{NS}cvParam[@accession='{accession}']")
    return None if node is None else node.get("value")


def _random_spectra(mode: str, n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    axis = np.sort(rng.uniform(100, 900, 50))
    spectra = []
    for i in range(n):
        if mode == "continuous":
            mz = axis
        else:
            mz = np.sort(rng.uniform(100, 900, 0 if i == 1 else rng.integers(1, 40)))
        spectra.append((mz, rng.exponential(50.0, mz.size)))
    return spectra


# a 5 x 4 raster with one pixel never measured
COORDS = np.array([(x, y) for y in range(1, 5) for x in range(1, 6) if (x, y) != (3, 2)])


@pytest.mark.parametrize("mode", ["processed", "continuous"])
@pytest.mark.parametrize(
    ("mz_dtype", "int_dtype"),
    [(np.float32, np.float32), (np.float64, np.float32), (np.float64, np.float64)],
)
def test_round_trip_through_pyimzml_parser(tmp_path, mode, mz_dtype, int_dtype):
    spectra = _random_spectra(mode, len(COORDS))
    path = tmp_path / "rt.imzML"
    synth.write_imzml(
        path, COORDS, iter(spectra), mode=mode, mz_dtype=mz_dtype, intensity_dtype=int_dtype
    )
    p = ImzMLParser(str(path))
    assert p.coordinates == [(int(x), int(y), 1) for x, y in COORDS]
    assert np.dtype(p.mzPrecision) == np.dtype(mz_dtype)
    assert np.dtype(p.intensityPrecision) == np.dtype(int_dtype)
    for i, (mz, intensity) in enumerate(spectra):
        got_mz, got_int = p.getspectrum(i)
        np.testing.assert_array_equal(got_mz, mz.astype(mz_dtype))
        np.testing.assert_array_equal(got_int, intensity.astype(int_dtype))
    if mode == "continuous":  # one stored axis
        assert len(set(p.mzOffsets)) == 1
    assert sorted(f.name for f in tmp_path.iterdir()) == ["rt.ibd", "rt.imzML"]


def test_uuid_and_sha1_tie_the_imzml_to_its_ibd(tmp_path):
    spectra = _random_spectra("processed", len(COORDS))
    chosen = uuid.UUID(int=12345, version=4)
    for name, file_uuid in (("given", chosen), ("random", None)):
        path = tmp_path / f"{name}.imzML"
        synth.write_imzml(path, COORDS, spectra, file_uuid=file_uuid)
        root = ET.parse(path).getroot()
        ibd = path.with_suffix(".ibd").read_bytes()
        written = uuid.UUID(_cv_value(root, "IMS:1000080").strip("{}"))
        assert written.bytes == ibd[:16]
        assert _cv_value(root, "IMS:1000091").lower() == hashlib.sha1(ibd).hexdigest()
        if file_uuid is not None:
            assert written == file_uuid


def test_header_carries_pixel_size_polarity_and_resolvable_references(tmp_path):
    path = tmp_path / "h.imzML"
    synth.write_imzml(
        path,
        COORDS,
        _random_spectra("processed", len(COORDS)),
        pixel_size_um=20.0,
        polarity="negative",
    )
    p = ImzMLParser(str(path))
    assert p.polarity == "negative"
    assert p.imzmldict["pixel size x"] == p.imzmldict["pixel size y"] == 20.0
    root = ET.parse(path).getroot()
    declared = {cv.get("id") for cv in root.iter(f"{NS}cv")}
    used = {node.get("cvRef") for node in root.iter(f"{NS}cvParam")}
    assert used <= declared
    configs = {node.get("id") for node in root.iter(f"{NS}instrumentConfiguration")}
    refs = {node.get("instrumentConfigurationRef") for node in root.iter(f"{NS}scan")}
    refs.add(root.find(f".//{NS}run").get("defaultInstrumentConfigurationRef"))
    assert refs <= configs

    plain = tmp_path / "plain.imzML"
    synth.write_imzml(plain, COORDS, _random_spectra("processed", len(COORDS)))
    p = ImzMLParser(str(plain))
    assert p.polarity is None and "pixel size x" not in p.imzmldict


def test_spectra_are_consumed_one_at_a_time(tmp_path):
    refs: list[weakref.ref] = []

    def spectra():
        rng = np.random.default_rng(0)
        for i in range(len(COORDS)):
            if i >= 2:
                # the spectrum before the previous one is written and no longer held
                assert refs[i - 2]() is None
            mz = np.sort(rng.uniform(100, 900, 30))
            refs.append(weakref.ref(mz))
            yield mz, rng.exponential(50.0, mz.size)

    synth.write_imzml(tmp_path / "lazy.imzML", COORDS, spectra())
    assert len(refs) == len(COORDS)


@pytest.mark.parametrize(
    ("n_spectra", "mode", "same_axis", "match"),
    [
        (len(COORDS) - 1, "processed", False, "spectra for"),
        (len(COORDS) + 1, "processed", False, "more spectra"),
        (len(COORDS), "continuous", False, "differs in continuous"),
    ],
)
def test_bad_input_raises_and_leaves_no_file(tmp_path, n_spectra, mode, same_axis, match):
    spectra = _random_spectra("processed", n_spectra)
    with pytest.raises(ValueError, match=match):
        synth.write_imzml(tmp_path / "bad.imzML", COORDS, iter(spectra), mode=mode)
    assert list(tmp_path.iterdir()) == []


def test_bad_coordinates_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="1-based"):
        synth.write_imzml(tmp_path / "z.imzML", COORDS - 1, [])
    with pytest.raises(ValueError, match="twice"):
        synth.write_imzml(tmp_path / "d.imzML", np.array([[1, 1], [1, 1]]), [])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_patterns_are_smooth_distinct_tissue_motifs(seed):
    n_classes = 8
    patterns, mask = synth.make_patterns(48, 56, n_classes, np.random.default_rng(seed))
    assert patterns.shape == (n_classes, 48, 56) and patterns.dtype == np.float32
    assert mask.shape == (48, 56) and mask.dtype == bool
    assert 0.55 < mask.mean() < 0.8
    assert patterns.min() >= 0 and patterns.max() <= 1
    assert np.all(patterns[:, ~mask] == 0)
    on = patterns[:, mask]
    corr = np.corrcoef(on)
    off_diagonal = corr[~np.eye(n_classes, dtype=bool)]
    assert off_diagonal.max() < 0.5
    # distinct, yet not disjoint: several classes share tissue
    shared = [
        ((on[i] > 0.3) & (on[j] > 0.3)).mean() > 0.03
        for i in range(n_classes)
        for j in range(i + 1, n_classes)
    ]
    assert sum(shared) >= 3
    # smooth: neighbours on tissue differ little (white noise would differ by ~0.33)
    both = mask[:, 1:] & mask[:, :-1]
    steps = np.abs(np.diff(patterns, axis=2))[:, both]
    assert np.median(steps) < 0.05


def test_patterns_depend_on_the_rng_state_only():
    a = synth.make_patterns(32, 40, 5, np.random.default_rng(7))
    b = synth.make_patterns(32, 40, 5, np.random.default_rng(7))
    c = synth.make_patterns(32, 40, 5, np.random.default_rng(8))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


def test_ions_classes_separation_and_isotopes():
    n_classes, n_ions = 8, 160
    ions = synth.simulate_ions(n_classes, n_ions, np.random.default_rng(0))
    mz = np.array([ion.mz for ion in ions])
    assert np.all(np.diff(mz) > 0)
    assert mz.min() >= 150 and mz.max() <= 1000
    assert (np.diff(mz) / mz[1:] * 1e6).min() >= 50
    mono = {ion.mz: ion for ion in ions if ion.isotope_of is None}
    assert len(mono) == n_ions
    per_class = np.bincount([ion.pattern for ion in mono.values()], minlength=n_classes)
    assert per_class.min() >= 3
    assert all(ion.label == f"class_{ion.pattern}" for ion in ions)
    abundance = np.array([ion.abundance for ion in mono.values()])
    assert abundance.min() >= 10**-1.5 and abundance.max() <= 1
    assert np.log10(abundance.max() / abundance.min()) > 1.2

    isotopes = [ion for ion in ions if ion.isotope_of is not None]
    m1 = {ion.isotope_of for ion in isotopes if ion.mz - ion.isotope_of < 1.5}
    assert 0.15 < len(m1) / n_ions < 0.45
    for ion in isotopes:
        parent = mono[ion.isotope_of]
        k = round(ion.mz - parent.mz)
        assert k in (1, 2)
        assert ion.mz - parent.mz == pytest.approx(k * synth.C13_SHIFT, abs=1e-9)
        assert (ion.label, ion.pattern) == (parent.label, parent.pattern)
        assert k == 1 or parent.mz in m1  # no M+2 without M+1
        if k == 1:
            ratio = ion.abundance / parent.abundance
            expected = 0.011 * parent.mz / 14
            assert 0.79 * expected <= ratio <= 1.21 * expected


def test_ions_need_three_per_class():
    with pytest.raises(ValueError, match="3 ions"):
        synth.simulate_ions(8, 20, np.random.default_rng(0))


@pytest.fixture(scope="module")
def world():
    rng_p, rng_i = np.random.default_rng(1), np.random.default_rng(2)
    patterns, mask = synth.make_patterns(30, 34, 5, rng_p)
    ions = synth.simulate_ions(5, 40, rng_i)
    return ions, patterns, mask


def _nearest_ion(mz: np.ndarray, ion_mz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    j = np.clip(np.searchsorted(ion_mz, mz), 1, ion_mz.size - 1)
    near = np.where(np.abs(mz - ion_mz[j - 1]) < np.abs(mz - ion_mz[j]), j - 1, j)
    return near, (mz - ion_mz[near]) / ion_mz[near] * 1e6


def test_spectra_follow_the_patterns_and_the_calibration_model(world):
    ions, patterns, mask = world
    ion_mz = np.array([ion.mz for ion in ions])
    quiet = {"noise_peaks": (0, 0), "background_peaks": 0}
    spectra = list(synth.simulate_spectra(ions, patterns, mask, np.random.default_rng(3), **quiet))
    assert len(spectra) == mask.size
    on = mask.ravel()
    images = np.zeros((len(ions), mask.size))
    errors, pixel_means = [], []
    for p, (mz, intensity) in enumerate(spectra):
        if not on[p]:
            assert mz.size == 0  # off tissue: no ion signal at all
            continue
        near, ppm = _nearest_ion(mz, ion_mz)
        assert np.abs(ppm).max() < 30  # every centroid is an ion
        images[near, p] += intensity
        errors.append(ppm)
        pixel_means.append(ppm.mean())
    # each ion's image is its class pattern, up to gamma, admixture and counting noise
    corr = [
        np.corrcoef(images[k, on], patterns[ion.pattern][mask])[0, 1] for k, ion in enumerate(ions)
    ]
    assert np.median(corr) > 0.8
    # centroid data are sparse: weak ions are missing from some tissue pixels
    assert 0.2 < (images[:, on] == 0).mean() < 0.8
    # m/z error: per-pixel drift (3 ppm) plus per-centroid jitter (2 ppm)
    assert 3.0 < np.concatenate(errors).std() < 4.3
    assert 2.3 < np.std(pixel_means) < 3.7


def test_spectra_are_sorted_positive_noisy_and_reproducible(world):
    ions, patterns, mask = world
    ion_mz = np.array([ion.mz for ion in ions])
    lo, hi = 20, 60
    kw = {"noise_peaks": (lo, hi), "background_peaks": 0}
    first = list(synth.simulate_spectra(ions, patterns, mask, np.random.default_rng(4), **kw))
    again = list(synth.simulate_spectra(ions, patterns, mask, np.random.default_rng(4), **kw))
    for (mz, intensity), (mz2, intensity2) in zip(first, again, strict=True):
        assert mz.dtype == np.float64 and intensity.dtype == np.float32
        assert np.all(np.diff(mz) >= 0) and np.all(intensity > 0)
        np.testing.assert_array_equal(mz, mz2)
        np.testing.assert_array_equal(intensity, intensity2)
    counts = np.array([mz.size for mz, _ in first])
    off = ~mask.ravel()
    assert counts[off].min() >= lo and counts[off].max() <= hi  # noise only
    # on tissue too: centroids far from every ion are noise
    strays = [(np.abs(_nearest_ion(mz, ion_mz)[1]) > 30).sum() for mz, _ in first]
    assert lo - 3 <= np.mean(np.array(strays)[~off]) <= hi


def test_spectra_draw_lazily(world):
    ions, patterns, mask = world
    rng = np.random.default_rng(5)
    before = rng.bit_generator.state
    spectra = synth.simulate_spectra(ions, patterns, mask, rng)
    assert rng.bit_generator.state == before
    next(spectra)
    assert rng.bit_generator.state != before


SMALL = {"height": 20, "width": 24, "n_classes": 4, "n_ions": 20}


def test_make_dataset_writes_annotations_and_a_full_raster(tmp_path):
    ions = synth.make_dataset(tmp_path / "s.imzML", tmp_path / "s.tsv", seed=3, **SMALL)
    lines = (tmp_path / "s.tsv").read_text().splitlines()
    assert lines[0] == "mz\tlabel"
    rows = [line.split("\t") for line in lines[1:]]
    assert [(float(m), lab) for m, lab in rows] == [(round(i.mz, 6), i.label) for i in ions]
    assert all(len(m.split(".")[1]) == 6 for m, _ in rows)
    assert [float(m) for m, _ in rows] == sorted(float(m) for m, _ in rows)
    p = ImzMLParser(str(tmp_path / "s.imzML"))
    h, w = SMALL["height"], SMALL["width"]
    assert p.coordinates == [(x, y, 1) for y in range(1, h + 1) for x in range(1, w + 1)]


def test_make_dataset_is_byte_for_byte_deterministic(tmp_path):
    def write(name: str, seed: int) -> list[bytes]:
        (tmp_path / name).mkdir()
        synth.make_dataset(
            tmp_path / name / "d.imzML", tmp_path / name / "d.tsv", seed=seed, **SMALL
        )
        return [(tmp_path / name / f"d.{ext}").read_bytes() for ext in ("imzML", "ibd", "tsv")]

    a, b, c = write("a", 0), write("b", 0), write("c", 1)
    assert a == b
    assert all(x != y for x, y in zip(a, c, strict=True))


def test_continuous_data_set_bins_the_processed_one(tmp_path):
    kw = {"seed": 2, "bin_ppm": 100.0, **SMALL}
    synth.make_dataset(tmp_path / "p.imzML", tmp_path / "p.tsv", **kw)
    synth.make_dataset(tmp_path / "c.imzML", tmp_path / "c.tsv", mode="continuous", **kw)
    proc, cont = ImzMLParser(str(tmp_path / "p.imzML")), ImzMLParser(str(tmp_path / "c.imzML"))
    assert len(set(cont.mzOffsets)) == 1
    axis = cont.getspectrum(0)[0]
    assert np.all(np.diff(np.log(axis)) == pytest.approx(np.log1p(100e-6)))
    for i in range(0, len(proc.coordinates), 7):
        mz, intensity = proc.getspectrum(i)
        binned = cont.getspectrum(i)[1]
        assert binned.sum() == pytest.approx(intensity.sum(), rel=1e-5)
        # every centroid lands in the bin whose centre is nearest on the log axis
        j = np.clip(np.searchsorted(axis, mz), 1, axis.size - 1)
        nearest = np.where(np.log(mz / axis[j - 1]) < np.log(axis[j] / mz), j - 1, j)
        assert np.all(binned[nearest] >= intensity * (1 - 1e-6))


def test_demo_script_writes_the_demo(tmp_path):
    out = tmp_path / "cli"
    result = run_script(
        "make_demo.py", "--imzml", out / "demo.imzML", "--annotations", out / "demo.tsv"
    )
    assert result.returncode == 0, result.stderr
    synth.make_demo(tmp_path / "demo.imzML", tmp_path / "demo.tsv")
    for name in ("demo.imzML", "demo.ibd", "demo.tsv"):
        assert (out / name).read_bytes() == (tmp_path / name).read_bytes()
    n_ions = len((tmp_path / "demo.tsv").read_text().splitlines()) - 1
    assert 150 <= n_ions <= 400
    p = ImzMLParser(str(tmp_path / "demo.imzML"))
    assert len(p.coordinates) == synth.DEMO_SIZE["height"] * synth.DEMO_SIZE["width"]


def _ion_images(ions, spectra, size):
    ion_mz = np.array([ion.mz for ion in ions])
    images = np.zeros((len(ions), size))
    for p, (mz, intensity) in enumerate(spectra):
        if mz.size:
            near, _ = _nearest_ion(mz, ion_mz)
            images[near, p] += intensity
    return images


def test_nuisances_make_images_harder_in_the_ways_they_claim(world):
    ions, patterns, mask = world
    on = mask.ravel()
    quiet = {"noise_peaks": (0, 0), "background_peaks": 0, "counts_scale": 2000.0}

    def corr_to_pattern(**kw):
        rng = np.random.default_rng(3)
        spectra = synth.simulate_spectra(ions, patterns, mask, rng, **quiet, **kw)
        images = _ion_images(ions, spectra, mask.size)
        return np.median(
            [
                np.corrcoef(images[k, on], patterns[ion.pattern][mask])[0, 1]
                for k, ion in enumerate(ions)
            ]
        )

    clean = corr_to_pattern(admixture=0.0, contrast_gamma=(1.0, 1.0))
    assert clean > 0.97
    # each nuisance alone lowers the agreement of an ion's image with its class pattern
    assert corr_to_pattern(admixture=0.0, admixture_max=0.5, contrast_gamma=(1, 1)) < clean
    assert corr_to_pattern(admixture=0.0, contrast_gamma=(1, 1), hotspot_fraction=0.02) < clean
    assert corr_to_pattern(admixture=0.0, contrast_gamma=(1, 1), curves="mixed") < clean
    # background: signal on all of the tissue, also where the pattern is 0
    rng = np.random.default_rng(3)
    spectra = synth.simulate_spectra(
        ions, patterns, mask, rng, **quiet, admixture=0.0, tissue_background=1.0
    )
    images = _ion_images(ions, spectra, mask.size)
    assert (images[:, on] > 0).mean() > 0.9 and np.all(images[:, ~on] == 0)


def test_nuisance_arguments_are_checked(world):
    ions, patterns, mask = world
    rng = np.random.default_rng(0)
    for bad in ({"admixture_max": 0.05}, {"curves": "cubic"}, {"hotspot_fraction": 1.0}):
        with pytest.raises(ValueError):
            synth.simulate_spectra(ions, patterns, mask, rng, admixture=0.1, **bad)


def test_class_weights_set_class_sizes():
    rng = np.random.default_rng(0)
    ions = synth.simulate_ions(3, 200, rng, class_weights=np.array([10.0, 1.0, 0.0]))
    mono = [ion.pattern for ion in ions if ion.isotope_of is None]
    sizes = np.bincount(mono, minlength=3)
    assert sizes[2] == 3 and sizes[0] > 5 * sizes[1]  # weight 0: only the 3 every class gets
    with pytest.raises(ValueError, match="class_weights"):
        synth.simulate_ions(3, 20, rng, class_weights=np.array([1.0, -1.0, 1.0]))
