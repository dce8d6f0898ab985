"""Evaluation metrics: hand-computed answers on small masks, empty conventions, HD95, a real BraTS map."""

import math
import time

import numpy as np
import pytest

from medseg3d.errors import InputError
from medseg3d.metrics import (
    BRATS_HD95_PENALTY,
    dice,
    hausdorff95,
    jaccard,
    markdown_summary,
    precision,
    score_case,
    sensitivity,
    specificity,
    summarize,
    volume_difference,
)


def cube(shape, lo, hi):
    mask = np.zeros(shape, dtype=bool)
    mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return mask


@pytest.fixture
def cubes():
    """pred = [2,6)^3 (64 voxels), ref = [4,9)^3 (125 voxels), overlap [4,6)^3 (8 voxels), in a 10^3 grid."""
    return cube((10,) * 3, (2,) * 3, (6,) * 3), cube((10,) * 3, (4,) * 3, (9,) * 3)


def test_overlap_metrics_of_two_cubes(cubes):
    pred, ref = cubes
    tp, fp, fn = 8, 64 - 8, 125 - 8
    tn = 1000 - tp - fp - fn
    assert dice(pred, ref) == pytest.approx(2 * 8 / (64 + 125))
    assert jaccard(pred, ref) == pytest.approx(8 / (64 + 125 - 8))
    assert sensitivity(pred, ref) == pytest.approx(8 / 125)
    assert precision(pred, ref) == pytest.approx(8 / 64)
    assert specificity(pred, ref) == pytest.approx(tn / (tn + fp))
    assert tn == 1000 - 181
    assert volume_difference(pred, ref, spacing=(1.0, 2.0, 0.5)) == pytest.approx((64 - 125) / 1000)
    assert volume_difference(pred, ref, spacing=(2.0, 2.0, 2.0)) == pytest.approx((64 - 125) * 8 / 1000)
    assert volume_difference(pred, ref, relative=True) == pytest.approx(-61 / 125)


def test_empty_conventions():
    empty = np.zeros((4, 4, 4), dtype=bool)
    some = empty.copy()
    some[1, 1, 1] = True
    for metric in (dice, jaccard, sensitivity, precision):
        assert metric(empty, empty) == 1.0
        assert metric(some, empty) == 0.0
        assert metric(empty, some) == 0.0
    assert specificity(empty, empty) == 1.0
    assert specificity(some, empty) == pytest.approx(63 / 64)
    full = np.ones((4, 4, 4), dtype=bool)
    assert specificity(full, full) == 1.0  # no negatives in the reference
    assert volume_difference(empty, empty, relative=True) == 0.0
    assert math.isnan(volume_difference(some, empty, relative=True))


def test_masks_given_as_label_maps_count_nonzero_as_inside():
    assert dice(np.array([0, 2, 2, 0]), np.array([0, 1, 0, 0])) == pytest.approx(2 / 3)


def test_hd95_single_voxels_with_anisotropic_spacing():
    pred = np.zeros((5, 5, 5), dtype=bool)
    ref = pred.copy()
    pred[0, 0, 0] = True
    ref[1, 2, 3] = True
    expected = math.sqrt((1 * 0.5) ** 2 + (2 * 1.0) ** 2 + (3 * 2.0) ** 2)
    assert hausdorff95(pred, ref, spacing=(0.5, 1.0, 2.0)) == pytest.approx(expected, rel=1e-6)
    assert hausdorff95(ref, pred, spacing=(0.5, 1.0, 2.0)) == pytest.approx(expected, rel=1e-6)


def test_hd95_interpolates_the_95th_percentile():
    # ref has two surface voxels at distances 0 and 2.5 mm from pred's only voxel; pred -> ref is 0.
    # The 95th percentile of [0, 2.5] with linear interpolation is 0.95 * 2.5.
    pred = np.zeros((5, 5, 6), dtype=bool)
    ref = pred.copy()
    pred[2, 2, 2] = True
    ref[2, 2, 2:4] = True
    assert hausdorff95(pred, ref, spacing=(1.0, 1.0, 2.5)) == pytest.approx(0.95 * 2.5, rel=1e-6)


def test_hd95_2d_and_isotropic_scalar_spacing():
    pred = np.zeros((6, 6), dtype=bool)
    ref = pred.copy()
    pred[0, 0] = True
    ref[3, 4] = True
    assert hausdorff95(pred, ref, spacing=(1.0, 1.0)) == pytest.approx(5.0)
    assert hausdorff95(pred, ref, spacing=2.0) == pytest.approx(10.0)


def test_hd95_empty_conventions():
    empty = np.zeros((4, 4, 4), dtype=bool)
    some = empty.copy()
    some[2, 2, 2] = True
    assert hausdorff95(empty, empty) == 0.0
    assert math.isnan(hausdorff95(some, empty))
    assert math.isnan(hausdorff95(empty, some))
    assert hausdorff95(empty, some, one_empty=BRATS_HD95_PENALTY) == 373.13


@pytest.mark.filterwarnings("ignore::FutureWarning")  # MONAI's own use of a deprecated argument
def test_hd95_crop_gives_monais_uncropped_answer():
    """Our bounding-box crop must not change the result, also for masks touching the array border."""
    import torch
    from monai.metrics import compute_hausdorff_distance

    rng = np.random.default_rng(0)
    pred = rng.random((12, 10, 9)) > 0.7
    ref = rng.random((12, 10, 9)) > 0.7
    pred[:, :, :2] = False
    ref[:5] = False
    spacing = (1.0, 0.8, 2.0)
    expected = compute_hausdorff_distance(
        torch.from_numpy(pred)[None, None],
        torch.from_numpy(ref)[None, None],
        include_background=True,
        percentile=95,
        spacing=list(spacing),
    ).item()
    assert hausdorff95(pred, ref, spacing) == pytest.approx(expected, rel=1e-6)


def test_metric_input_errors():
    with pytest.raises(InputError, match="differs"):
        dice(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(InputError, match="spacing"):
        hausdorff95(np.ones((3, 3, 3)), np.ones((3, 3, 3)), spacing=(1.0, 1.0))


CLASSES = {"NCR": (1,), "ED": (2,), "ETc": (4,)}
REGIONS = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}


def test_score_case_keys_and_values():
    ref = np.zeros((6, 6, 6), dtype=np.int16)
    ref[1:5, 1:5, 1:5] = 2
    ref[2:4, 2:4, 2:4] = 1
    pred = ref.copy()
    pred[2:4, 2:4, 2:4] = 4  # core predicted as enhancing
    row = score_case(pred, ref, CLASSES, REGIONS, spacing=(1.0, 1.0, 1.0))
    for name in (*CLASSES, *REGIONS):
        for prefix in ("dice", "jaccard", "sens", "spec", "prec", "hd95", "voldiff", "vol_ref"):
            assert f"{prefix}_{name}" in row
    assert row["dice_WT"] == 1.0 and row["dice_TC"] == 1.0 and row["hd95_WT"] == 0.0
    assert row["dice_NCR"] == 0.0 and math.isnan(row["hd95_NCR"])  # predicted NCR is empty
    assert row["dice_ET"] == 0.0 and row["vol_ref_ET"] == 0.0 and row["voldiff_ET"] == pytest.approx(0.008)
    assert row["dice_ED"] == 1.0
    assert row["sens_ET"] == 0.0 and row["spec_ET"] == pytest.approx((216 - 8) / 216)
    penalised = score_case(pred, ref, CLASSES, REGIONS, hd95_one_empty=BRATS_HD95_PENALTY)
    assert penalised["hd95_NCR"] == BRATS_HD95_PENALTY
    as_float = score_case(pred.astype(np.float64), ref, CLASSES, REGIONS)
    assert as_float["dice_ED"] == 1.0


def test_score_case_errors():
    ref = np.zeros((4, 4, 4), dtype=np.uint8)
    with pytest.raises(InputError, match="differs"):
        score_case(np.zeros((4, 4, 3), dtype=np.uint8), ref, CLASSES, REGIONS)
    bad = ref.copy()
    bad[0, 0, :2] = (3, 7)
    with pytest.raises(InputError, match=r"prediction holds label values \[3, 7\]") as info:
        score_case(bad, ref, CLASSES, REGIONS)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="integer"):
        score_case(ref + 0.5, ref, CLASSES, REGIONS)
    with pytest.raises(InputError, match="both a class and a region"):
        score_case(ref, ref, {"ET": (4,)}, {"ET": (4,)})


def test_summarize_is_nan_aware():
    rows = [
        {"case": "a", "dice_WT": 0.9, "hd95_WT": 2.0},
        {"case": "b", "dice_WT": 0.5, "hd95_WT": float("nan")},
        {"case": "c", "dice_WT": 0.7, "hd95_WT": 4.0},
    ]
    summary = summarize(rows)
    assert set(summary) == {"dice_WT", "hd95_WT"}
    assert summary["dice_WT"]["mean"] == pytest.approx(0.7)
    assert summary["dice_WT"]["median"] == pytest.approx(0.7)
    assert summary["dice_WT"]["std"] == pytest.approx(math.sqrt((0.04 + 0.04) / 3))
    assert summary["dice_WT"]["min"] == pytest.approx(0.5)
    assert summary["hd95_WT"]["mean"] == pytest.approx(3.0) and summary["hd95_WT"]["n_nan"] == 1
    assert summary["hd95_WT"]["n"] == 2


def test_markdown_summary_table_and_worst_cases():
    rows = [{"case": f"c{i}", "dice_WT": d, "dice_ET": 1 - d} for i, d in enumerate((0.9, 0.2, 0.6, 0.4))]
    text = markdown_summary(rows)
    assert "| metric | mean | median | std | min | NaN |" in text
    assert "| dice_WT | 0.5250 |" in text
    assert "- dice_WT: c1 (0.2000), c3 (0.4000), c2 (0.6000)" in text
    assert "- dice_ET: c0 (0.1000), c2 (0.4000), c3 (0.6000)" in text
    assert "Worst" not in markdown_summary([{k: v for k, v in r.items() if k != "case"} for r in rows])


def test_real_brats_label_map(brats_root):
    nib = pytest.importorskip("nibabel")
    image = nib.load(brats_root / "Brats18_2013_2_1" / "Brats18_2013_2_1_seg.nii.gz")
    ref = np.asarray(image.dataobj)
    spacing = tuple(float(z) for z in image.header.get_zooms()[:3])
    assert spacing == (1.0, 1.0, 1.0)
    hausdorff95(ref == 4, ref == 4, spacing)  # warm-up: the first call imports MONAI (~2 s)

    start = time.perf_counter()
    same = score_case(ref, ref, CLASSES, REGIONS, spacing)
    # Shift by 2 voxels along array axis 0 (x), filling with background.
    shifted = np.zeros_like(ref)
    shifted[2:] = ref[:-2]
    moved = score_case(shifted, ref, CLASSES, REGIONS, spacing)
    elapsed = time.perf_counter() - start

    for name in (*CLASSES, *REGIONS):
        assert same[f"dice_{name}"] == 1.0 and same[f"hd95_{name}"] == 0.0
        # Every surface voxel of the shifted mask is a reference surface voxel moved by 2 mm (the tumour is
        # far from the array border), so no surface distance exceeds 2 mm in either direction: 0 < HD95 <= 2.
        assert 0.0 < moved[f"hd95_{name}"] <= 2.0 + 1e-6
        assert moved[f"dice_{name}"] < 1.0
        assert moved[f"voldiff_{name}"] == pytest.approx(0.0)
    assert moved["dice_WT"] > 0.8  # a 2-voxel shift of a large region keeps most of the overlap
    assert elapsed < 60.0  # generous: CI machines are noisy; ~0.5 s idle (bounding-box crop before MONAI)
