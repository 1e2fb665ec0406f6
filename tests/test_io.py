"""Conversion against a brute-force reference: pyimzml's per-spectrum reader."""

import itertools

import h5py
import numpy as np
import pytest
from conftest import CONVERT, write_small_imzml
from pyimzml.ImzMLParser import ImzMLParser

from msicoloc.imzml import chunk_bounds
from msicoloc.spectra import LogGridAccumulator, SpectraFile, convert


def reference_spectra(path):
    p = ImzMLParser(str(path))
    return [p.getspectrum(i) for i in range(len(p.coordinates))], np.array(p.coordinates)


@pytest.mark.parametrize("mode", ["processed", "continuous"])
@pytest.mark.parametrize("mz_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("int_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_values", [7, 10_000_000])
def test_convert_matches_pyimzml(tmp_path, mode, mz_dtype, int_dtype, max_values):
    src = tmp_path / "d.imzML"
    write_small_imzml(src, mode=mode, mz_dtype=mz_dtype, intensity_dtype=int_dtype, seed=3)
    ref, coords = reference_spectra(src)
    out = tmp_path / "s.h5"
    convert(src, out, CONVERT, max_values=max_values)
    with SpectraFile(out) as sf:
        assert sf.continuous == (mode == "continuous")
        assert sf.n_pixels == len(ref)
        got = [
            (
                ch.mz[ch.offsets[i] : ch.offsets[i + 1]] if not sf.continuous else ch.mz,
                ch.intensity[ch.offsets[i] : ch.offsets[i + 1]]
                if not sf.continuous
                else ch.intensity[i],
            )
            for ch in sf.iter_chunks(max_values=13)
            for i in range(ch.stop - ch.start)
        ]
        for (rmz, rint), (gmz, gint) in zip(ref, got, strict=True):
            np.testing.assert_array_equal(gmz, rmz)
            np.testing.assert_array_equal(gint, rint)
            assert gmz.dtype == np.dtype(mz_dtype) and gint.dtype == np.dtype(int_dtype)
        tic = sf.pixels("tic")
        np.testing.assert_allclose(tic, [r[1].astype(float).sum() for r in ref], rtol=1e-12)
        rms = [np.sqrt(np.mean(r[1].astype(float) ** 2)) if len(r[1]) else 0.0 for r in ref]
        np.testing.assert_allclose(sf.pixels("rms"), rms, rtol=1e-12)
        np.testing.assert_array_equal(sf.pixels("coords"), coords)
        assert sf.image_shape == (6, 7)
        np.testing.assert_array_equal(sf.pixels("row"), coords[:, 1] - 1)
        np.testing.assert_array_equal(sf.pixels("col"), coords[:, 0] - 1)
        _mz, mean, count, kind = sf.mean_spectrum()
        # the mean spectrum keeps every unit of intensity, whatever the binning
        assert mean.sum() * sf.n_pixels == pytest.approx(tic.sum(), rel=1e-9)
        assert sum(len(r[1]) == 0 for r in ref) == (mode == "processed")
        assert count.sum() == sum(
            int((r[1] != 0).sum()) if sf.continuous else len(r[1]) for r in ref
        )
        assert kind == ("native" if mode == "continuous" else "ppm_grid")
    with h5py.File(out) as h5:
        assert h5.attrs["source_imzml"] == "d.imzML"
        assert len(h5.attrs["uuid"]) == 36


def test_metadata_pixel_size_and_polarity(tmp_path):
    from msicoloc.synth import write_imzml

    src = tmp_path / "m.imzML"
    spectra = [(np.array([100.0, 200.0]), np.array([1.0, 2.0]))] * 2
    write_imzml(src, np.array([[1, 1], [2, 1]]), spectra, polarity="negative", pixel_size_um=20.0)
    info = convert(src, tmp_path / "s.h5", CONVERT)
    assert info["polarity"] == "negative"
    np.testing.assert_allclose(info["pixel_size_um"], [20.0, 20.0])


def test_chunk_bounds_cover_all_pixels_within_budget():
    lengths = np.array([5, 0, 3, 12, 1, 1, 1, 0, 4])
    bounds = chunk_bounds(lengths, 6)
    assert bounds[0] == 0 and bounds[-1] == len(lengths)
    for a, b in itertools.pairwise(bounds):
        assert b > a
        assert lengths[a:b].sum() <= 6 or b - a == 1  # a long pixel gets a chunk of its own
    assert chunk_bounds(lengths, 100, max_pixels=4) == [0, 4, 8, 9]


def test_log_grid_bins_have_constant_ppm_width_and_keep_mass():
    acc = LogGridAccumulator(bin_ppm=2.0)
    acc.add(np.array([500.0, 500.0004, 1000.0]), np.array([1.0, 2.0, 4.0]))
    acc.add(np.array([100.0]), np.array([8.0]))  # grows the grid downwards
    centers = acc.centers()
    assert acc.sum.sum() == 15.0 and acc.count.sum() == 4
    widths = np.diff(centers) / centers[:-1] * 1e6
    np.testing.assert_allclose(widths, 2.0, rtol=1e-6)
    # 500 and 500.0004 (0.8 ppm apart) share a 2-ppm bin; 1000 has its own
    assert sorted(acc.sum[acc.sum > 0].tolist()) == [3.0, 4.0, 8.0]
    k = np.argmax(acc.sum == 4.0)
    assert abs(centers[k] - 1000.0) / 1000.0 * 1e6 <= 1.0


def test_streaming_checksum_in_order_gaps_and_out_of_order(tmp_path, processed_file):
    import hashlib

    from msicoloc import InputError
    from msicoloc.imzml import StreamingChecksum, read_index

    path, _, _ = processed_file
    idx = read_index(path)
    data = idx.ibd.read_bytes()
    assert idx.checksum == ("sha1", hashlib.sha1(data).hexdigest())
    with open(idx.ibd, "rb") as f:
        c = StreamingChecksum(idx)
        c.update(f, 16, data[16:100])  # the header is a gap, read in passing
        c.update(f, 150, data[150:200])  # another gap
        c.verify()  # the tail is hashed at the end
        c = StreamingChecksum(idx)
        c.update(f, 100, data[100:200])
        c.update(f, 50, data[50:60])  # goes back: falls back to hashing the file
        assert not c.in_order
        c.verify()
    idx.checksum = ("sha1", "0" * 40)
    with pytest.raises(InputError, match="SHA-1 checksum"):
        StreamingChecksum(idx).verify()
