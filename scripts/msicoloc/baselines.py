"""Classical co-localization features, for the baselines next to the learned features.

Each function turns an ion-image stack ``(n, H, W)`` and its tissue mask into one feature
vector per image whose cosine similarity is a co-localization score the field uses; clustering
these with the same kNN spectral clustering as the learned features makes the comparison like
for like. Only tissue pixels enter.

=====================  ========================================================================
function               cosine of the vectors is ...
=====================  ========================================================================
pixel_vectors          pixel-vector cosine (intensities as they are)
pearson_vectors        Pearson correlation (optionally of lightly smoothed images)
spearman_vectors       Spearman rank correlation (invariant to any monotone contrast curve)
metaspace_vectors      METASPACE's score: below-median pixels zeroed, 3x3 median filter, cosine
pca_vectors            cosine in the space of the leading principal components of the images
nmf_vectors            cosine of the images' loadings on non-negative spatial factors
=====================  ========================================================================

The workflow computes them from ``ion_images.h5`` (:func:`classical_grams`) so that memory does
not grow with pixels x ions: one pass over bands of image rows (each with the few rows around
it that a filter reaches) accumulates every method's Gram matrix at once; what needs a whole
image (METASPACE's median, Spearman's ranks) comes from a first pass over blocks of images.
Vectors with a Gram matrix (:func:`gram_features`) have the same cosines as the transformed
images, so clustering them is clustering those. The whole-array functions above are the
reference the tests compare with.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
from scipy import ndimage, stats

from msicoloc.settings import CompareSettings


def pixel_vectors(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The tissue pixels of every image as one vector: cosine = pixel-vector cosine."""
    return images[:, mask].astype(np.float32)


def smooth_on_tissue(images: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur that only averages tissue pixels (normalised convolution), 0 off tissue.

    A plain blur would pull the zeros around the tissue into its edge pixels, so every image
    would gain the same dark rim and look more alike than it is.
    """
    if sigma <= 0:
        return np.where(mask, images, 0.0).astype(np.float32)
    weight = np.maximum(ndimage.gaussian_filter(mask.astype(np.float32), sigma), 1e-6)
    # one filter call for the whole stack (sigma 0 across images): per-image calls cost more
    # in overhead than in filtering on the thin bands of classical_grams
    num = ndimage.gaussian_filter(np.where(mask, images, 0.0).astype(np.float32), (0, sigma, sigma))
    num /= weight
    num[:, ~mask] = 0.0
    return num


def _centred(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=1, keepdims=True)).astype(np.float32)


def pearson_vectors(images: np.ndarray, mask: np.ndarray, sigma: float = 0.0) -> np.ndarray:
    """Tissue pixels minus their mean: cosine = Pearson correlation of the two images.

    Centring makes the score blind to an additive on-tissue background; ``sigma`` > 0 first
    smooths each image on the tissue (:func:`smooth_on_tissue`), which averages counting noise
    over neighbouring pixels before it is compared.
    """
    return _centred(smooth_on_tissue(images, mask, sigma)[:, mask])


def spearman_vectors(images: np.ndarray, mask: np.ndarray, sigma: float = 0.0) -> np.ndarray:
    """Centred ranks of the tissue pixels: cosine = Spearman rank correlation.

    Ranks ignore how intensity maps to concentration (any increasing contrast curve gives the
    same ranks) and tame hotspots, which only reach the top rank. Ties share their mean rank.
    """
    pixels = smooth_on_tissue(images, mask, sigma)[:, mask]
    return _centred(stats.rankdata(pixels, axis=1))


def metaspace_vectors(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """METASPACE-style: values below the image's median set to 0, then a 3x3 median filter.

    The median is taken over the tissue pixels; the filter runs on the whole canvas (0 off
    tissue) and the tissue pixels are kept.
    """
    out = np.empty((len(images), int(mask.sum())), dtype=np.float32)
    for i, img in enumerate(images):
        med = np.median(img[mask])
        kept = np.where(img < med, 0.0, img)
        out[i] = ndimage.median_filter(kept, size=3, mode="constant")[mask]
    return out


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pca_vectors(
    images: np.ndarray, mask: np.ndarray, n_components: int, random_state: int
) -> np.ndarray:
    """Scores of each image on the leading principal components of the standardised images.

    Each image is centred and scaled to unit norm first (so bright ions do not own the
    components); the components are spatial patterns shared by many ions, and an image is
    described by how much of each it carries (the dimensionality reduction of the MSI
    co-localization review; cosine in this space is Pearson correlation of the images'
    projections onto the leading patterns).
    """
    from sklearn.decomposition import PCA

    x = _unit_rows(_centred(images[:, mask]))
    k = max(1, min(n_components, x.shape[0] - 1, x.shape[1]))
    return PCA(k, random_state=random_state).fit_transform(x).astype(np.float32)


def nmf_vectors(
    images: np.ndarray, mask: np.ndarray, n_components: int, random_state: int
) -> np.ndarray:
    """Loadings of each image on non-negative spatial factors (NMF of images x pixels).

    Each image is scaled to a maximum of 1 first; NMF then explains every image as an additive
    mix of non-negative spatial patterns, which suits intensities and is the other
    dimensionality reduction MSI co-localization studies use.
    """
    from sklearn.decomposition import NMF

    x = np.maximum(images[:, mask].astype(np.float64), 0.0)
    x /= np.maximum(x.max(axis=1, keepdims=True), 1e-12)
    k = max(1, min(n_components, x.shape[0], x.shape[1]))
    model = NMF(k, init="nndsvda", random_state=random_state, max_iter=400)
    return model.fit_transform(x).astype(np.float32)


#: The classical representations by name, as evaluate and the answer step call them.
CLASSICAL = ("pixel_cosine", "pearson", "pearson_smooth", "spearman", "metaspace", "pca", "nmf")


def representation(
    name: str, images: np.ndarray, mask: np.ndarray, settings: CompareSettings, random_state: int
) -> np.ndarray:
    """Feature vectors of a classical method by name (see :data:`CLASSICAL`).

    Parameters
    ----------
    name
        One of :data:`CLASSICAL`.
    images, mask
        ``(n, H, W)`` ion images and their ``(H, W)`` tissue mask.
    settings
        The config's ``compare`` section: ``smooth_sigma`` (pearson_smooth),
        ``pca_components``, ``nmf_components``.
    random_state
        Seed of PCA's and NMF's solvers.
    """
    if name == "pixel_cosine":
        return pixel_vectors(images, mask)
    if name == "pearson":
        return pearson_vectors(images, mask)
    if name == "pearson_smooth":
        return pearson_vectors(images, mask, settings.smooth_sigma)
    if name == "spearman":
        return spearman_vectors(images, mask)
    if name == "metaspace":
        return metaspace_vectors(images, mask)
    if name == "pca":
        return pca_vectors(images, mask, settings.pca_components, random_state)
    if name == "nmf":
        return nmf_vectors(images, mask, settings.nmf_components, random_state)
    raise ValueError(f"unknown classical method {name!r}; known: {CLASSICAL}")


def cosine_similarity(features: np.ndarray) -> np.ndarray:
    """Cosine similarity matrix of the rows (a zero row has similarity 0 to everything)."""
    f = np.asarray(features, dtype=np.float64)
    norm = np.linalg.norm(f, axis=1)
    f = f / np.where(norm > 0, norm, 1.0)[:, None]
    return f @ f.T


def nearest_neighbours(similarity: np.ndarray, top_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and similarities of each row's ``top_n`` most similar other rows."""
    sim = similarity.copy()
    np.fill_diagonal(sim, -np.inf)
    top_n = min(top_n, len(sim) - 1)
    idx = np.argsort(-sim, axis=1, kind="stable")[:, :top_n]
    return idx, np.take_along_axis(sim, idx, axis=1)


# --- blockwise, from ion_images.h5 ----------------------------------------------------------


def gram_features(gram: np.ndarray) -> np.ndarray:
    """Vectors (n x r, float64) whose inner products are ``gram``: their cosines are those of
    the vectors the Gram matrix came from (r = its numerical rank)."""
    values, vectors = np.linalg.eigh(np.asarray(gram, dtype=np.float64))
    keep = values > max(values.max(), 0.0) * 1e-12
    return vectors[:, keep] * np.sqrt(values[keep])


def _gauss_radius(sigma: float) -> int:
    """Rows a Gaussian filter of ``sigma`` reaches (scipy.ndimage's default truncate of 4)."""
    return int(4.0 * float(sigma) + 0.5) if sigma > 0 else 0


def median3x3(images: np.ndarray) -> np.ndarray:
    """3x3 median filter of each image of a stack (0 outside the canvas), as
    ``ndimage.median_filter(img, size=3, mode="constant")``, a few times faster.

    Each column triple is sorted once (low, mid, high); the median of the nine values is then
    the median of (max of the three lows, median of the three mids, min of the three highs).
    Runs on a few images at a time, so its temporaries stay small.
    """
    images = np.asarray(images, dtype=np.float32)
    out = np.empty_like(images)
    step = max(1, (16 * 2**20) // max(1, 4 * images[0].size)) if len(images) else 1
    for i in range(0, len(images), step):
        out[i : i + step] = _median3x3(images[i : i + step])
    return out


def _median3x3(images: np.ndarray) -> np.ndarray:
    x = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    a, b, c = x[:, :-2], x[:, 1:-1], x[:, 2:]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    mid = np.maximum(lo, np.minimum(hi, c))
    lo, hi = np.minimum(lo, c), np.maximum(hi, c)

    def med3(p, q, r):
        return np.maximum(np.minimum(p, q), np.minimum(np.maximum(p, q), r))

    lows = np.maximum(np.maximum(lo[..., :-2], lo[..., 1:-1]), lo[..., 2:])
    highs = np.minimum(np.minimum(hi[..., :-2], hi[..., 1:-1]), hi[..., 2:])
    return med3(lows, med3(mid[..., :-2], mid[..., 1:-1], mid[..., 2:]), highs)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank (``scipy.stats.rankdata``), in float32.

    MSI images are mostly zeros; the zeros are one tie and only the others are sorted.
    """
    x = np.asarray(values).ravel()
    ranks = np.empty(len(x), dtype=np.float32)
    neg, zero = x < 0, x == 0
    n_neg, n_zero = int(neg.sum()), int(zero.sum())
    ranks[zero] = n_neg + (n_zero + 1) / 2
    for part, before in ((neg, 0), (x > 0, n_neg + n_zero)):
        if part.any():
            v = x[part]
            order = np.argsort(v)
            s = v[order]
            starts = np.flatnonzero(np.concatenate([[True], s[1:] != s[:-1]]))
            ends = np.append(starts[1:], len(s))
            r = np.empty(len(s), dtype=np.float64)
            r[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
            ranks[part] = r + before
    return ranks


#: Gram matrices :func:`classical_grams` computes; "blurred" is the isotope test's.
GRAMS = (
    "pixel_cosine",
    "pearson",
    "pearson_smooth",
    "spearman",
    "metaspace",
    "pca",
    "blurred",
    "pearson_smooth_null",
)
#: Of those with their own sums, the ones whose vectors are centred (Pearson correlations).
CENTRED = {"pearson_smooth", "blurred", "pearson_smooth_null"}


def classical_grams(
    path: str | os.PathLike[str],
    names: Iterable[str],
    *,
    smooth_sigma: float,
    blur_sigma: float | None = None,
    null_seed: int | None = None,
    workers: int = 1,
) -> dict[str, np.ndarray]:
    """Gram matrices (n x n, float64) of the classical methods' vectors, for every ion image
    of an ion_images.h5, in one pass over bands of image rows.

    Memory holds about :data:`msicoloc.images.BLOCK_BYTES` of images at a time, whatever the
    number of pixels. Each method's transform only needs a band and a few rows around it
    (the filters' reach), plus per-image numbers from a first pass over whole images when a
    method needs them (the median for METASPACE-style; the ranks for Spearman, kept in a
    temporary file when large). The cosines of the rows of a Gram matrix's
    :func:`gram_features` are the method's scores; "pearson", "pearson_smooth" and "blurred"
    are centred Gram matrices (their cosines: Pearson correlations), "pca" is the correlation
    matrix itself, "blurred" is that of the images after a plain Gaussian blur of
    ``blur_sigma`` pixels (:func:`msicoloc.metrics.image_correlation`); ``smooth_sigma`` is
    pearson_smooth's on-tissue blur; "pearson_smooth_null" is pearson_smooth's of the images
    with every pixel's deviation from the image mean given a random sign (seeded by
    ``null_seed``): images with the same values and noise, but nothing co-localized, the null
    of :func:`msicoloc.cluster.parallel_analysis_n_clusters`; ``workers`` threads rank the
    images for Spearman.
    """
    from msicoloc import images as im  # read at call time: the bound is one setting

    names = set(names)
    if unknown := names - set(GRAMS):
        raise ValueError(f"unknown classical Gram {sorted(unknown)}; known: {GRAMS}")
    if "blurred" in names and blur_sigma is None:
        raise ValueError("the blurred Gram needs blur_sigma")
    if "pearson_smooth_null" in names and null_seed is None:
        raise ValueError("the null Gram needs null_seed")
    raw = bool(names & {"pixel_cosine", "pearson", "pca"})
    halo = max(_gauss_radius(smooth_sigma), _gauss_radius(blur_sigma or 0), 1)
    with h5py.File(path, "r") as f:
        images, mask = f["images"], np.asarray(f["mask"][()], dtype=bool)
        n, h, w = images.shape
        n_tissue = int(mask.sum())
        shift = _approx_means(f)  # centring by nearly the mean keeps float32 sums exact
        with contextlib.ExitStack() as stack:
            medians, ranks = None, None
            if names & {"spearman", "metaspace"}:
                if "spearman" in names:
                    ranks = stack.enter_context(
                        im.scratch_array(Path(path), n, n_tissue, 16, 2**16, 64 * 2**20)
                    )
                medians = _whole_image_pass(images, mask, ranks, workers, im.BLOCK_BYTES)
            # pixel cosine, Pearson and PCA share the Gram of the images as they are
            own = names - {"pixel_cosine", "pearson", "pca"} | ({"raw"} if raw else set())
            acc = {name: _Accumulator(n) for name in own}
            cum = np.concatenate([[0], np.cumsum(mask.sum(axis=1))])
            rows = max(1, min(h, im.BLOCK_BYTES // max(1, 4 * n * w)))
            centre = (n_tissue + 1) / 2  # the mean rank
            stream = _RowStream(images)
            for r0 in range(0, h, rows):
                r1 = min(h, r0 + rows)
                a, b = max(0, r0 - halo), min(h, r1 + halo)
                band = stream.rows(a, b)
                inner, tissue, m = slice(r0 - a, r1 - a), mask[r0:r1], mask[a:b]
                if not tissue.any():
                    continue
                # each transformed band is summed and dropped before the next is made
                if raw:
                    acc["raw"].add(band[:, inner][:, tissue], shift)
                if "pearson_smooth" in acc:
                    smooth = smooth_on_tissue(band, m, smooth_sigma)
                    acc["pearson_smooth"].add(smooth[:, inner][:, tissue], shift)
                    del smooth
                if "pearson_smooth_null" in acc:
                    flipped = (band - shift.astype(np.float32)[:, None, None]) * random_signs(
                        null_seed, a, b, n, w
                    )
                    smooth = smooth_on_tissue(flipped, m, smooth_sigma)
                    acc["pearson_smooth_null"].add(smooth[:, inner][:, tissue])
                    del flipped, smooth
                if "blurred" in acc:
                    blur = ndimage.gaussian_filter(band, (0, blur_sigma, blur_sigma))
                    acc["blurred"].add(blur[:, inner][:, tissue], shift)
                    del blur
                if "metaspace" in acc:
                    kept = median3x3(np.where(band < medians[:, None, None], 0.0, band))
                    acc["metaspace"].add(kept[:, inner][:, tissue])
                    del kept
                if "spearman" in acc:
                    acc["spearman"].add(np.asarray(ranks[:, cum[r0] : cum[r1]]) - centre)
                del band
    grams = {name: acc[name].gram(centred=name in CENTRED) for name in own - {"raw"}}
    if raw:
        grams["pixel_cosine"] = acc["raw"].gram()
        grams["pearson"] = acc["raw"].gram(centred=True)
        grams["pca"] = correlation_from_gram(grams["pearson"])
    if "blurred" in grams:
        grams["blurred"] = correlation_from_gram(grams["blurred"])
    return {name: grams[name] for name in names}


def random_signs(seed: int, r0: int, r1: int, n: int, w: int) -> np.ndarray:
    """Random signs (float32, n x (r1 - r0) x w, r1 > r0) for rows ``r0..r1`` of ``n`` images of
    width ``w``; each row has its own generator, so a row gets the same signs whichever band
    of :func:`classical_grams` (or its halo) reads it."""
    rows = [
        np.random.default_rng([seed, r]).integers(0, 2, (n, w), dtype=np.int8)
        for r in range(r0, r1)
    ]
    return (2 * np.stack(rows, axis=1) - 1).astype(np.float32)


class _RowStream:
    """Rows ``[a, b)`` of every image of an HDF5 stack, asked for in increasing order: each
    read ends on a boundary of the stored chunks and the rows a later band needs again are
    kept, so every chunk is decompressed once (a band cut through chunks would decompress
    them again for every band, and HDF5 spends far longer on such partial reads)."""

    def __init__(self, images):
        self.images, self.start = images, 0
        self.chunk_rows = images.chunks[1] if images.chunks else 1
        self.buffer = np.zeros((images.shape[0], 0, images.shape[2]), dtype=np.float32)

    def rows(self, a: int, b: int) -> np.ndarray:
        end = self.start + self.buffer.shape[1]
        if b > end:
            stop = min(self.images.shape[1], -(-b // self.chunk_rows) * self.chunk_rows)
            new = np.asarray(self.images[:, end:stop], dtype=np.float32)
            keep = self.buffer[:, max(0, a - self.start) :]
            self.buffer = np.concatenate([keep, new], axis=1) if keep.shape[1] else new
            self.start = max(a, self.start) if keep.shape[1] else end
        return self.buffer[:, a - self.start : b - self.start]


class _Accumulator:
    """Sums over pixel blocks of X X^T and of X's rows, X = values - shift (float64 sums)."""

    def __init__(self, n: int):
        self.xx, self.x, self.shift, self.pixels = np.zeros((n, n)), np.zeros(n), np.zeros(n), 0

    def add(self, values: np.ndarray, shift: np.ndarray | None = None) -> None:
        x = np.asarray(values, dtype=np.float32)
        if shift is not None:
            self.shift = shift.astype(np.float64)
            x = x - shift.astype(np.float32)[:, None]
        self.xx += x @ x.T
        self.x += x.sum(axis=1, dtype=np.float64)
        self.pixels += x.shape[1]

    def gram(self, centred: bool = False) -> np.ndarray:
        """Gram matrix of the values, or (``centred``) of the values minus each row's mean."""
        if centred:
            return self.xx - np.outer(self.x, self.x) / max(self.pixels, 1)
        s, m = self.x, self.shift
        return self.xx + np.outer(s, m) + np.outer(m, s) + self.pixels * np.outer(m, m)


def _approx_means(f: h5py.File) -> np.ndarray:
    """Each image's mean over the tissue from the file's small level (the shift that keeps
    the centred sums accurate: any number near the mean does)."""
    small = f["images_small"] if "images_small" in f else f["images"]
    mask = np.asarray(f["mask_small" if "mask_small" in f else "mask"][()], dtype=bool)
    if not mask.any():
        mask = np.ones(mask.shape, dtype=bool)
    step = max(1, (64 * 2**20) // max(1, 4 * mask.size))
    starts = range(0, len(small), step)
    means = [np.asarray(small[i : i + step])[:, mask].mean(axis=1) for i in starts]
    return np.concatenate(means) if means else np.zeros(0)


def _whole_image_pass(images, mask: np.ndarray, ranks, workers: int, max_bytes: int) -> np.ndarray:
    """Per-image tissue medians, and (if ``ranks`` is given) the tissue pixels' ranks written
    to it, from blocks of whole images."""
    n, h, w = images.shape
    per_block = max(1, min(n, max_bytes // max(1, 8 * h * w)))
    medians = np.zeros(n, dtype=np.float32)
    with ThreadPoolExecutor(max(1, workers)) as pool:  # sorting releases the GIL
        for i in range(0, n, per_block):
            values = np.asarray(images[i : i + per_block], dtype=np.float32)[:, mask]
            medians[i : i + len(values)] = np.median(values, axis=1)
            if ranks is not None:
                ranks[i : i + len(values)] = np.stack(list(pool.map(average_ranks, values)))
    return medians


def correlation_from_gram(gram: np.ndarray) -> np.ndarray:
    """The cosines of the vectors of a Gram matrix (for a centred Gram: their correlations;
    0 for a vector of length 0)."""
    d = np.sqrt(np.maximum(np.diag(gram), 0.0))
    d = np.where(d > 0, d, np.inf)
    return gram / d[:, None] / d[None, :]


def representations_from_file(
    names: Iterable[str],
    path: str | os.PathLike[str],
    settings: CompareSettings,
    random_state: int,
    *,
    blur_sigma: float | None = None,
    workers: int = 1,
) -> dict[str, np.ndarray]:
    """:func:`representation` of every named method for the ion images of an ion_images.h5,
    in bounded memory and one pass over the images (:func:`classical_grams`).

    Vectors with the method's cosines (see :func:`gram_features`); PCA is computed exactly
    from the images' correlation matrix; NMF, which has no Gram form, runs on the small
    level of the file (the images themselves when they are small). With ``blur_sigma``, the
    same pass also gives the isotope test's correlation matrix, as "blurred".
    """
    names = list(names)
    if unknown := set(names) - set(CLASSICAL):
        raise ValueError(f"unknown classical method {sorted(unknown)}; known: {CLASSICAL}")
    grams = classical_grams(
        path,
        [x for x in names if x != "nmf"] + (["blurred"] if blur_sigma is not None else []),
        smooth_sigma=settings.smooth_sigma,
        blur_sigma=blur_sigma,
        workers=workers,
    )
    out = {"blurred": grams["blurred"]} if blur_sigma is not None else {}
    for name in names:
        if name == "nmf":
            from msicoloc.images import read_ion_images

            images, _, mask = read_ion_images(path, "small")
            out[name] = nmf_vectors(images, mask, settings.nmf_components, random_state)
        elif name == "pca":
            out[name] = pca_from_gram(grams[name], settings.pca_components)
        else:
            out[name] = gram_features(grams[name])
    return out


def representation_from_file(
    name: str, path: str | os.PathLike[str], settings: CompareSettings, random_state: int
) -> np.ndarray:
    """One method of :func:`representations_from_file`."""
    return representations_from_file([name], path, settings, random_state)[name]


def pca_from_gram(gram: np.ndarray, n_components: int) -> np.ndarray:
    """Principal component scores of vectors with Gram matrix ``gram`` (rows centred over the
    vectors first, as PCA does): the exact scores up to the sign of each component."""
    n = len(gram)
    centre = np.eye(n) - 1.0 / n
    values, vectors = np.linalg.eigh(centre @ gram @ centre)
    k = max(1, min(n_components, n - 1))
    top = np.argsort(values)[::-1][:k]
    return vectors[:, top] * np.sqrt(np.maximum(values[top], 0.0))
