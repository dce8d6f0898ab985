"""validation/docstring_numbers.py: its measurements measure what they say (a known foreground volume; three
blur implementations that agree), quickly, without the shared data."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import VALIDATION, load_script

from medseg3d.io import Volume, write_volume


@pytest.fixture(scope="module")
def numbers():
    return load_script("docstring_numbers", VALIDATION)


def test_foreground_volume_is_the_cube_in_ml(numbers, tmp_path):
    image = np.zeros((20, 20, 20), np.float32)
    image[5:15, 5:15, 5:15] = 100.0  # 1,000 voxels of 2 x 2 x 2 mm = 8 ml
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    for m in numbers.SEQUENCES:
        write_volume(Volume(image, affine), tmp_path / f"{m}.nii.gz")
    result = numbers.raw_volumes(tmp_path)
    assert result["foreground_ml"] == {m: 8.0 for m in numbers.SEQUENCES}
    assert result["max_stripped_ml"] > 8.0


def test_blur_timings_compare_implementations_that_agree(numbers):
    result = numbers.blur_milliseconds(repeats=1)  # asserts inside that the three give the same output
    assert result["taps"] == 7
    assert all(result[k] > 0 for k in ("shifted views (ours)", "conv1d, separable", "conv3d"))
