import numpy as np
import pytest

from medseg3d.labels import get_scheme
from medseg3d.report import volume_summary, voxel_volume_ml


def test_voxel_volume_is_the_product_of_the_spacing_in_ml():
    assert voxel_volume_ml((1, 1, 1)) == pytest.approx(0.001)
    assert voxel_volume_ml((0.9, 0.9, 5.5)) == pytest.approx(0.9 * 0.9 * 5.5 / 1000)


def test_brats_volumes_per_region_and_label_on_a_known_map():
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[:2] = 2          # 200 voxels edema
    labels[2, :5] = 1       # 50 voxels necrosis
    labels[3, :3] = 4       # 30 voxels enhancing
    out = volume_summary(labels, (2.0, 1.0, 1.0), get_scheme("brats"))  # 2 ul per voxel
    assert out["regions"] == {"WT": 0.56, "TC": 0.16, "ET": 0.06}
    assert out["labels"] == {"1 NCR/NET": 0.1, "2 edema": 0.4, "4 enhancing": 0.06}


def test_an_empty_map_has_zero_volumes():
    out = volume_summary(np.zeros((4, 4, 4), dtype=np.int16), (1, 1, 1), get_scheme("brats"))
    assert set(out["regions"].values()) == {0.0}
