"""Classical co-localization features on hand-made images."""

import numpy as np
import pytest

from msicoloc.baselines import (
    cosine_similarity,
    metaspace_vectors,
    nearest_neighbours,
    pixel_vectors,
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
