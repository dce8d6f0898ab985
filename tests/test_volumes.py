"""Volumes and lesions (medseg3d.volumes); the report page's tests are in tests/clinical/test_report.py."""

import numpy as np
import pytest

from medseg3d.labels import get_scheme, scheme_from_labels
from medseg3d.volumes import lesion_summary, volume_summary, volumes_line, voxel_volume_ml


def test_voxel_volume_is_the_product_of_the_spacing_in_ml():
    assert voxel_volume_ml((1, 1, 1)) == pytest.approx(0.001)
    assert voxel_volume_ml((0.9, 0.9, 5.5)) == pytest.approx(0.9 * 0.9 * 5.5 / 1000)


def test_brats_volumes_per_region_and_label_on_a_known_map():
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[:2] = 2  # 200 voxels edema
    labels[2, :5] = 1  # 50 voxels necrosis
    labels[3, :3] = 4  # 30 voxels enhancing
    out = volume_summary(labels, (2.0, 1.0, 1.0), get_scheme("brats"))  # 2 ul per voxel
    assert out["regions"] == {"WT": 0.56, "TC": 0.16, "ET": 0.06}
    assert out["labels"] == {"1 NCR/NET": 0.1, "2 edema": 0.4, "4 enhancing": 0.06}


def test_an_empty_map_has_zero_volumes():
    out = volume_summary(np.zeros((4, 4, 4), dtype=np.int16), (1, 1, 1), get_scheme("brats"))
    assert set(out["regions"].values()) == {0.0}


# --- lesions --------------------------------------------------------------


def two_lesion_case():
    """Edema and enhancing lesions of 125 and 64 voxels and an 8-voxel fragment (also the report tests'
    case)."""
    labels = np.zeros((30, 30, 20), dtype=np.uint8)
    labels[2:7, 2:7, 2:7] = 2  # 125 voxels edema, centre (4, 4, 4)
    labels[20:24, 20:24, 10:14] = 4  # 64 voxels enhancing, centre (21.5, 21.5, 11.5)
    labels[10:12, 25:27, 15:17] = 1  # 8 voxels: below 50 mm^3 at 1 mm
    return labels


def test_lesions_are_components_above_50_mm3_with_world_centres():
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = (-10.0, 5.0, 100.0)
    out = lesion_summary(two_lesion_case(), affine, get_scheme("brats"))
    wt = out["WT"]
    assert (wt["count"], wt["n_small"]) == (2, 1)
    assert [le["volume_ml"] for le in wt["lesions"]] == [0.125, 0.064]  # largest first
    assert wt["lesions"][0]["centre_mm"] == [-6.0, 9.0, 104.0]
    assert wt["lesions"][1]["centre_voxel"] == [22, 22, 12] or wt["lesions"][1]["centre_voxel"] == [
        21,
        21,
        11,
    ]
    assert wt["lesions"][1]["centre_mm"] == [11.5, 26.5, 111.5]
    assert (out["TC"]["count"], out["TC"]["n_small"]) == (1, 1)
    assert out["ET"]["count"] == 1


def test_lesion_size_threshold_is_in_mm3_so_spacing_counts():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])  # 8 voxels = 64 mm^3 > 50
    out = lesion_summary(two_lesion_case(), affine, get_scheme("brats"))
    assert (out["WT"]["count"], out["WT"]["n_small"]) == (3, 0)
    assert out["WT"]["lesions"][0]["volume_ml"] == 1.0  # 125 voxels of 8 ul


def test_an_empty_map_has_no_lesions():
    out = lesion_summary(np.zeros((5, 5, 5), dtype=np.uint8), np.eye(4), get_scheme("brats"))
    assert all(v == {"count": 0, "n_small": 0, "lesions": []} for v in out.values())


def test_volumes_line_names_tumour_regions_for_a_tumour_scheme_and_classes_otherwise():
    labels = np.zeros((4, 4, 4), dtype=np.uint8)
    labels[0, :2, :] = 1  # 8 voxels
    labels[1, :, :] = 2  # 16 voxels
    brats = volume_summary(labels, (5, 5, 5), get_scheme("brats"))  # 0.125 ml a voxel
    assert volumes_line(brats) == "tumour volumes: WT 3.0 ml, TC 1.0 ml, ET 0.0 ml"
    hippo = scheme_from_labels({"background": 0, "anterior": 1, "posterior": 2})
    line = volumes_line(volume_summary(labels, (5, 5, 5), hippo))
    assert line == "volumes: anterior 1.0 ml, posterior 2.0 ml"
