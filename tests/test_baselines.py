"""Classical co-localization features on hand-made images."""

import numpy as np
import pytest
from conftest import workflow_settings

from msicoloc.baselines import (
    CLASSICAL,
    cosine_similarity,
    metaspace_vectors,
    nearest_neighbours,
    pixel_vectors,
    representation,
)


def test_pixel_vectors_keep_tissue_pixels_only():
    images = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    mask = np.zeros((3, 3), bool)
    mask[1, :] = True
    np.testing.assert_array_equal(pixel_vectors(images, mask), [[3, 4, 5], [12, 13, 14]])


def test_metaspace_thresholds_at_median_then_median_filters():
    img = np.zeros((5, 5), np.float32)
    img[1:4, 1:4] = 10.0  # a 3x3 block survives a 3x3 median filter at its centre
    img[0, 4] = 50.0  # a lone hot pixel is removed by it
    mask = np.ones((5, 5), bool)
    out = metaspace_vectors(img[None], mask)[0].reshape(5, 5)
    assert out[2, 2] == 10.0 and out[0, 4] == 0.0
    # below-median values are zeroed before filtering: a flat low background stays 0
    img2 = img + 1.0
    out2 = metaspace_vectors(img2[None], mask)[0].reshape(5, 5)
    assert out2[0, 0] == 0.0 and out2[2, 2] == 11.0


def test_cosine_and_neighbours():
    f = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    s = cosine_similarity(f)
    assert s[0, 1] == pytest.approx(1.0) and s[0, 2] == 0.0 and s[3, 0] == 0.0
    idx, sim = nearest_neighbours(s, 1)
    assert idx[0, 0] == 1 and idx[1, 0] == 0 and sim[0, 0] == pytest.approx(1.0)


# --- the correlation family, against numpy/scipy references --------------------------------

from scipy import stats  # noqa: E402

from msicoloc.baselines import (  # noqa: E402
    nmf_vectors,
    pca_vectors,
    pearson_vectors,
    smooth_on_tissue,
    spearman_vectors,
)


@pytest.fixture
def images():
    rng = np.random.default_rng(1)
    stack = rng.gamma(2.0, 1.0, (6, 12, 10)).astype(np.float32)
    mask = np.zeros((12, 10), bool)
    mask[2:11, 1:9] = True
    return stack * mask, mask


def test_pearson_vectors_cosine_is_pearson_correlation(images):
    stack, mask = images
    got = cosine_similarity(pearson_vectors(stack, mask))
    np.testing.assert_allclose(got, np.corrcoef(stack[:, mask]), atol=1e-5)


def test_spearman_vectors_cosine_is_spearman_correlation(images):
    stack, mask = images
    stack[0, 3, 3] = stack[0, 4, 4]  # a tie: mean ranks, as scipy
    got = cosine_similarity(spearman_vectors(stack, mask))
    np.testing.assert_allclose(got, stats.spearmanr(stack[:, mask], axis=1)[0], atol=1e-5)


def test_spearman_is_blind_to_monotone_contrast_and_pearson_to_offsets(images):
    stack, mask = images
    curved = np.where(mask, stack**3 + 0.5 * np.exp(stack), 0)
    np.testing.assert_allclose(spearman_vectors(curved, mask), spearman_vectors(stack, mask))
    shifted = np.where(mask, 2.0 * stack + 7.0, 0)
    np.testing.assert_allclose(
        cosine_similarity(pearson_vectors(shifted, mask)),
        cosine_similarity(pearson_vectors(stack, mask)),
        atol=1e-5,
    )


def test_smoothing_on_tissue_ignores_off_tissue_values(images):
    stack, mask = images
    polluted = stack.copy()
    polluted[:, ~mask] = 1000.0  # whatever lies off tissue must not bleed in
    np.testing.assert_allclose(
        smooth_on_tissue(polluted, mask, 1.0), smooth_on_tissue(stack, mask, 1.0), rtol=1e-5
    )
    flat = np.where(mask, 3.0, 0.0)[None].astype(np.float32)
    # a constant image stays constant up to the tissue edge (no dark rim)
    np.testing.assert_allclose(smooth_on_tissue(flat, mask, 2.0)[0][mask], 3.0, rtol=1e-5)
    assert np.all(smooth_on_tissue(stack, mask, 1.0)[:, ~mask] == 0)
    np.testing.assert_array_equal(smooth_on_tissue(stack, mask, 0.0), stack)


def test_pca_and_nmf_vectors_shapes_and_seeded_reproducibility(images):
    stack, mask = images
    for fn in (pca_vectors, nmf_vectors):
        a, b = fn(stack, mask, 3, 0), fn(stack, mask, 3, 0)
        assert a.shape == (6, 3) and np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)
    assert np.all(nmf_vectors(stack, mask, 3, 0) >= 0)
    # more components than images: clipped, not an error
    assert pca_vectors(stack, mask, 50, 0).shape[1] <= 5


def test_pca_groups_images_of_one_pattern():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:20, 0:20]
    a, b = np.exp(-((yy - 5) ** 2 + (xx - 5) ** 2) / 20), np.exp(-((yy - 15) ** 2) / 20)
    stack = np.stack([p * s + rng.random((20, 20)) * 0.05 for p in (a, b) for s in (1, 2, 3)])
    mask = np.ones((20, 20), bool)
    sim = cosine_similarity(pca_vectors(stack, mask, 2, 0))
    assert sim[0, 1] > 0.9 and sim[0, 2] > 0.9 and sim[0, 3] < 0.2


def test_representation_knows_every_classical_method(images):
    stack, mask = images
    settings = workflow_settings("compare", smooth_sigma=1.0, pca_components=3, nmf_components=3)
    for name in CLASSICAL:
        assert representation(name, stack, mask, settings, 0).shape[0] == 6
    with pytest.raises(ValueError, match="unknown classical method"):
        representation("nope", stack, mask, settings, 0)


# --- blockwise from ion_images.h5 against the whole-array versions ---------------------------


@pytest.fixture
def stack_file(tmp_path):
    """An ion_images.h5 of 14 images (3 patterns, noise, a tissue mask)."""
    import h5py

    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:23, 0:19]
    patterns = [np.exp(-((yy - c) ** 2 + (xx - 9) ** 2) / 30) for c in (4, 11, 18)]
    stack = np.stack([patterns[i % 3] * (1 + i) + rng.random((23, 19)) for i in range(14)])
    mask = np.ones((23, 19), bool)
    mask[:3, :4] = False
    stack = (stack * mask).astype(np.float32)
    path = tmp_path / "ion_images.h5"
    with h5py.File(path, "w") as f:
        f["images"], f["mask"], f["mz"] = stack, mask, np.linspace(100, 900, 14)
    return path, stack, mask


@pytest.mark.parametrize(
    "name", ["pixel_cosine", "pearson", "pearson_smooth", "spearman", "metaspace", "nmf"]
)
@pytest.mark.parametrize("max_bytes", [2**30, 3000])  # all in memory; bands of 2 rows, temp file
def test_blockwise_representation_has_the_whole_array_cosines(
    stack_file, name, max_bytes, monkeypatch
):
    from msicoloc import baselines
    from msicoloc import images as im

    path, stack, mask = stack_file
    monkeypatch.setattr(im, "BLOCK_BYTES", max_bytes)
    settings = workflow_settings("compare", nmf_components=3, smooth_sigma=1.5)
    used, bands = [], []  # which store the ranks went through; pixel blocks of the Gram
    scratch, add = im.scratch_array, baselines._Accumulator.add

    def spy(beside, n, p, *args):
        used.append(n * p * 4 > max_bytes)  # True: through a temporary file
        return scratch(beside, n, p, *args)

    def count(self, values, *args):
        bands.append(values.shape[1])
        return add(self, values, *args)

    monkeypatch.setattr(im, "scratch_array", spy)
    monkeypatch.setattr(baselines._Accumulator, "add", count)
    want = cosine_similarity(representation(name, stack, mask, settings, 0))
    got = cosine_similarity(baselines.representation_from_file(name, path, settings, 0))
    np.testing.assert_allclose(got, want, atol=2e-5)
    # Spearman's ranks go through the file when the bound is small; the Gram sums bands
    assert used == ([max_bytes == 3000] if name == "spearman" else [])
    if name != "nmf":
        assert sum(bands) == mask.sum() and (len(bands) > 5) == (max_bytes == 3000)
    assert not list(path.parent.glob("*.scratch-*"))


@pytest.mark.parametrize("chunks", [None, (4, 8, 19)])  # stored whole; chunks taller than bands
def test_one_pass_gives_every_method_as_alone(stack_file, monkeypatch, chunks):
    import h5py

    from msicoloc import baselines
    from msicoloc import images as im

    path, stack, mask = stack_file
    if chunks:
        with h5py.File(path, "a") as f:
            del f["images"]
            f.create_dataset("images", data=stack, chunks=chunks, compression="lzf")
    monkeypatch.setattr(im, "BLOCK_BYTES", 5000)  # bands of 4 rows
    settings = workflow_settings("compare", pca_components=4)
    names = [name for name in baselines.CLASSICAL if name != "nmf"]
    together = baselines.representations_from_file(names, path, settings, 0)
    for name in names:
        want = cosine_similarity(representation(name, stack, mask, settings, 0))
        np.testing.assert_allclose(cosine_similarity(together[name]), want, atol=2e-5)


def test_centred_sums_stay_exact_on_a_bright_background(tmp_path, monkeypatch):
    """Pearson of images sitting on a large offset (mean^2 / variance ~ 1e6) still matches
    the whole-array version: the sums are taken around (nearly) the mean."""
    import h5py

    from msicoloc import baselines
    from msicoloc import images as im

    rng = np.random.default_rng(0)
    stack = (1000 + rng.random((6, 30, 40))).astype(np.float32)
    mask = np.ones((30, 40), bool)
    path = tmp_path / "ion_images.h5"
    with h5py.File(path, "w") as f:
        f["images"], f["mask"] = stack, mask
    monkeypatch.setattr(im, "BLOCK_BYTES", 4000)
    settings = workflow_settings("compare")
    got = baselines.representation_from_file("pearson", path, settings, 0)
    want = representation("pearson", stack, mask, settings, 0)
    np.testing.assert_allclose(cosine_similarity(got), cosine_similarity(want), atol=1e-4)


def test_median3x3_is_scipys_median_filter():
    from scipy import ndimage

    from msicoloc.baselines import median3x3

    rng = np.random.default_rng(1)
    stack = rng.integers(0, 4, (3, 9, 11)).astype(np.float32)  # many ties
    stack[1] = rng.normal(size=(9, 11))
    want = np.stack([ndimage.median_filter(img, size=3, mode="constant") for img in stack])
    np.testing.assert_array_equal(median3x3(stack), want)
    big = rng.integers(0, 3, (3, 1100, 1100)).astype(np.float32)  # one image per pass
    want = np.stack([ndimage.median_filter(img, size=3, mode="constant") for img in big])
    np.testing.assert_array_equal(median3x3(big), want)


def test_average_ranks_are_scipys_rankdata():
    from scipy import stats

    from msicoloc.baselines import average_ranks

    rng = np.random.default_rng(3)
    x = rng.integers(-3, 5, 500).astype(np.float32)  # negatives, zeros and ties
    x[::7] = rng.normal(size=len(x[::7]))
    np.testing.assert_array_equal(average_ranks(x), stats.rankdata(x))
    np.testing.assert_array_equal(average_ranks(np.zeros(4)), [2.5] * 4)


def test_blockwise_pca_is_exact_pca(stack_file):
    from msicoloc.baselines import pca_from_gram, representation_from_file

    path, stack, mask = stack_file
    settings = workflow_settings("compare", pca_components=4)
    got = representation_from_file("pca", path, settings, 0)
    x = stack[:, mask].astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x -= x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    want = u[:, :4] * s[:4]
    np.testing.assert_allclose(np.abs(got), np.abs(want), atol=1e-5)  # signs are free
    assert pca_from_gram(x @ x.T, 30).shape[1] == 13  # at most n - 1 components


def test_blurred_correlation_equals_image_correlation(stack_file, monkeypatch):
    from msicoloc import baselines
    from msicoloc import images as im
    from msicoloc.metrics import image_correlation

    path, stack, mask = stack_file
    monkeypatch.setattr(im, "BLOCK_BYTES", 3000)
    np.testing.assert_allclose(
        baselines.classical_grams(path, ["blurred"], smooth_sigma=0.0, blur_sigma=1.0)["blurred"],
        image_correlation(stack, mask, 1.0),
        atol=2e-6,
    )


@pytest.mark.parametrize("max_bytes", [2**30, 3000])  # in one piece; bands of 2 rows
def test_null_gram_is_the_whole_array_one_of_sign_flipped_images(
    stack_file, max_bytes, monkeypatch
):
    """The null of parallel analysis: the smoothed, centred Gram of every pixel's deviation
    from its image's mean with a random sign, the same whatever the band size; a new seed
    gives new signs, and the null has lost the patterns the images share."""
    import h5py

    from msicoloc import baselines
    from msicoloc import images as im

    path, stack, mask = stack_file
    monkeypatch.setattr(im, "BLOCK_BYTES", max_bytes)
    n, h, w = stack.shape
    got = baselines.classical_grams(
        path, ["pearson_smooth_null", "pearson_smooth"], smooth_sigma=1.5, null_seed=4
    )
    with h5py.File(path) as f:
        shift = baselines._approx_means(f)
    flipped = (stack - shift[:, None, None]) * baselines.random_signs(4, 0, h, n, w)
    x = baselines.smooth_on_tissue(flipped, mask, 1.5)[:, mask].astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(got["pearson_smooth_null"], x @ x.T, rtol=1e-4, atol=1e-3)
    other = baselines.classical_grams(path, ["pearson_smooth_null"], smooth_sigma=1.5, null_seed=5)[
        "pearson_smooth_null"
    ]
    assert not np.allclose(other, got["pearson_smooth_null"], rtol=0.05)
    same_pattern = [(i, i + 3) for i in range(11)]  # images i and i + 3 share a pattern

    def mean_correlation(gram):
        d = np.sqrt(np.diag(gram))
        return np.mean([gram[i, j] / d[i] / d[j] for i, j in same_pattern])

    assert mean_correlation(got["pearson_smooth"]) > 0.8
    assert abs(mean_correlation(got["pearson_smooth_null"])) < 0.2
    with pytest.raises(ValueError, match="null_seed"):
        baselines.classical_grams(path, ["pearson_smooth_null"], smooth_sigma=1.5)


def test_choose_k_step_writes_given_or_chosen_number(stack_file, tmp_path):
    """n_clusters.json: a given number as it is; auto: parallel analysis's choice with the
    eigenvalues of the data and the null for the report (3 patterns here)."""
    import importlib.util
    import json

    from conftest import SCRIPTS

    spec = importlib.util.spec_from_file_location("step_choose_k", SCRIPTS / "choose_k.py")
    step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(step)
    path, _, _ = stack_file
    sigma = workflow_settings("compare").smooth_sigma
    out = tmp_path / "k.json"
    step.main(path, out, cluster=workflow_settings("cluster", n_clusters=7), seed=0)
    assert json.loads(out.read_text()) == {"n_clusters": 7, "chosen_by": "given"}
    auto = workflow_settings("cluster", n_clusters="auto", auto_range=(2, 8))
    step.main(path, out, cluster=auto, seed=0, smooth_sigma=sigma)
    record = json.loads(out.read_text())
    assert record["chosen_by"] == "parallel_analysis" and record["n_clusters"] == 3
    assert len(record["eigenvalues"]) == len(record["null_eigenvalues"]) == 9
