"""The resampling paths behind rotate_scale: separable and general agree."""

import numpy as np
import pytest
import torch

from medseg3d.augment import resample as R

from .samples import sample as _sample


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_resampling_paths_with_identity_matrix_are_identity(mode):
    image, _ = _sample()
    eye = np.eye(3)
    torch.testing.assert_close(R.resample_general(image, eye, mode), image, atol=1e-5, rtol=0)
    for c in range(3):
        torch.testing.assert_close(R.resample_separable(image, eye, c, mode), image, atol=1e-5, rtol=0)


@pytest.mark.parametrize("k", range(3))
@pytest.mark.parametrize("scale", [1.0, 1.17, 0.83])  # not 0.8: it puts voxels on exact nearest ties
def test_separable_path_matches_3d_grid_sample(k, scale):
    image, _ = _sample((13, 16, 11), channels=3)
    angles = [0.0, 0.0, 0.0]
    angles[k] = 37.0
    sampling = np.linalg.inv(R.linear_map(angles, scale, 3))
    c = R.separable_axis(sampling)
    assert c == 2 - k
    for mode in ("bilinear", "nearest"):
        fast = R.resample_separable(image, sampling, c, mode)
        slow = R.resample_general(image, sampling, mode)
        torch.testing.assert_close(fast, slow, atol=1e-4, rtol=0)
        assert fast.is_contiguous()
