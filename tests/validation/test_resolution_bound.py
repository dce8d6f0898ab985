"""validation/resolution_bound.py: the reference's round trip through a model's grid (known answers)."""

import numpy as np
import pytest
from conftest import VALIDATION, load_script

from medseg3d.preprocess import PrepConfig


@pytest.fixture(scope="module")
def bound():
    return load_script("resolution_bound", VALIDATION)


def test_round_trip_known_answers(bound):
    # foreground everywhere: no crop
    image = np.random.default_rng(0).uniform(1, 2, (4, 16, 16, 16)).astype(np.float32)
    label = np.zeros((16, 16, 16), np.int16)
    label[4:10, 4:10, 4:10] = 2  # oedema: 3 voxels of the 2x grid per axis, aligned with them
    label[4:8, 4:8, 4:8] = 4  # enhancing: 2 coarse voxels per axis
    label[12, 12, 12] = 1  # one necrotic voxel: 1/8 of a coarse voxel
    prep = PrepConfig(crop="bbox", margin=0, downsample=2.0)
    scores = bound.round_trip_dice(image, np.eye(4), label, prep)
    # Back on the fine grid, linear interpolation gives a voxel at the end of an aligned run 0.75 of its own
    # coarse voxel per axis: a block's 8 corner voxels get 0.75^3 = 0.42 and are lost, edges (0.56) and faces
    # stay, nothing outside appears (0.25 per axis at most). The lone necrotic voxel (1/8 -> below 0.5) is
    # lost.
    assert scores["WT"] == pytest.approx(2 * 208 / (208 + 217))  # 6^3 + 1 voxels, 6^3 - 8 kept
    assert scores["ET"] == pytest.approx(2 * 56 / (56 + 64))  # 4^3 voxels, 4^3 - 8 kept
    assert scores["TC"] == pytest.approx(2 * 56 / (56 + 65))  # ET's plus the lost necrotic voxel
    assert bound.round_trip_dice(
        image, np.eye(4), label, PrepConfig(crop="bbox", margin=0, downsample=1.0)
    ) == {"WT": 1.0, "TC": 1.0, "ET": 1.0}
