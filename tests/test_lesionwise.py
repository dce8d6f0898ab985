import numpy as np
import pytest

from medseg3d.lesionwise import LESION_HD95_PENALTY, LesionRules, lesion_wise_region, lesion_wise_scores

SHAPE = (40, 40, 40)


def cube(mask, corner, size):
    x, y, z = corner
    mask[x : x + size, y : y + size, z : z + size] = True
    return mask


def empty():
    return np.zeros(SHAPE, dtype=bool)


def test_both_empty_scores_one_and_zero_as_the_challenge_does():
    out = lesion_wise_region(empty(), empty())
    assert (out["dice"], out["hd95"], out["tp"], out["fn"], out["fp"]) == (1.0, 0.0, 0, 0, 0)


def test_a_perfect_prediction_of_one_lesion():
    ref = cube(empty(), (5, 5, 5), 5)  # 125 voxels > 50
    out = lesion_wise_region(ref.copy(), ref)
    assert (out["dice"], out["hd95"], out["tp"], out["fn"], out["fp"]) == (1.0, 0.0, 1, 0, 0)


def test_a_false_positive_blob_halves_dice_and_adds_the_374_mm_penalty():
    ref = cube(empty(), (5, 5, 5), 5)
    pred = cube(ref.copy(), (30, 30, 30), 4)
    out = lesion_wise_region(pred, ref)
    assert out["fp"] == 1 and out["tp"] == 1
    assert out["dice"] == pytest.approx(0.5)
    assert out["hd95"] == pytest.approx(LESION_HD95_PENALTY / 2)


def test_a_missed_lesion_scores_zero_and_374():
    ref = cube(cube(empty(), (5, 5, 5), 5), (28, 28, 28), 5)
    pred = cube(empty(), (5, 5, 5), 5)
    out = lesion_wise_region(pred, ref)
    assert (out["tp"], out["fn"], out["fp"]) == (1, 1, 0)
    assert out["dice"] == pytest.approx(0.5)
    assert out["hd95"] == pytest.approx(LESION_HD95_PENALTY / 2)
    only_missed = lesion_wise_region(empty(), ref)
    assert (only_missed["dice"], only_missed["hd95"]) == (0.0, LESION_HD95_PENALTY)


def test_an_empty_reference_with_a_prediction_is_all_false_positive():
    out = lesion_wise_region(cube(empty(), (5, 5, 5), 3), empty())
    assert (out["dice"], out["hd95"], out["fp"]) == (0.0, LESION_HD95_PENALTY, 1)


def test_lesions_of_at_most_50_mm3_leave_the_average_and_their_matches_are_not_false_positives():
    ref = cube(cube(empty(), (5, 5, 5), 5), (28, 28, 28), 3)  # 125 and 27 voxels
    pred_misses_small = cube(empty(), (5, 5, 5), 5)
    out = lesion_wise_region(pred_misses_small, ref)
    assert (out["dice"], out["hd95"], out["tp"], out["fn"], out["fp"], out["n_small"]) == (
        1.0,
        0.0,
        1,
        0,
        0,
        1,
    )
    pred_finds_small = cube(pred_misses_small.copy(), (28, 28, 28), 3)
    out = lesion_wise_region(pred_finds_small, ref)
    assert (out["dice"], out["fp"]) == (1.0, 0)
    # at 2 mm the same 27 voxels are 216 mm^3 and the small lesion counts
    out = lesion_wise_region(pred_misses_small, ref, spacing=(2.0, 2.0, 2.0))
    assert (out["tp"], out["fn"], out["n_small"]) == (1, 1, 0)
    assert out["dice"] == pytest.approx(0.5)


@pytest.mark.parametrize("gap, n_lesions", [(6, 1), (7, 2)])
def test_fragments_within_two_dilation_reaches_are_one_lesion(gap, n_lesions):
    # 3 iterations of the 18-neighbourhood grow each fragment by 3 voxels along an axis: gaps up to 6 merge
    ref = empty()
    ref[10:15, 10:15, 5:10] = True
    ref[10:15, 10:15, 10 + gap : 15 + gap] = True
    out = lesion_wise_region(empty(), ref)
    assert len(out["lesions"]) == n_lesions
    assert out["fn"] == n_lesions


def test_dilation_iterations_come_from_the_rules():
    ref = empty()
    ref[10:15, 10:15, 5:10] = True
    ref[10:15, 10:15, 13:18] = True  # gap 3: one lesion with 3 iterations, two with 1
    assert len(lesion_wise_region(empty(), ref, rules=LesionRules(dilation_iterations=1))["lesions"]) == 2
    assert len(lesion_wise_region(empty(), ref)["lesions"]) == 1


def test_a_prediction_near_but_not_touching_a_lesion_is_matched_not_a_false_positive():
    ref = cube(empty(), (5, 5, 5), 5)
    pred = cube(empty(), (12, 5, 5), 5)  # 2 voxels gap: within the lesion's 3-voxel reach
    out = lesion_wise_region(pred, ref)
    assert (out["tp"], out["fp"], out["dice"]) == (1, 0, 0.0)
    assert 0 < out["hd95"] < LESION_HD95_PENALTY


def test_a_lesion_scored_against_the_union_of_its_matched_components():
    ref = cube(empty(), (5, 5, 5), 8)  # 512 voxels
    pred = empty()
    pred[5:13, 5:13, 5:8] = True  # 192 voxels
    pred[5:13, 5:13, 10:13] = True  # 192 voxels, separate component, same lesion
    out = lesion_wise_region(pred, ref)
    assert (out["tp"], out["fp"]) == (1, 0)
    assert out["dice"] == pytest.approx(2 * 384 / (512 + 384))


def test_per_region_columns_on_a_label_map():
    ref = np.zeros(SHAPE, dtype=np.uint8)
    ref[5:15, 5:15, 5:15] = 2
    ref[8:12, 8:12, 8:12] = 4  # 64 voxels ET inside
    pred = ref.copy()
    pred[30:34, 30:34, 30:34] = 4  # a false-positive enhancing blob (64 voxels)
    row = lesion_wise_scores(pred, ref, {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)})
    assert row["lesion_dice_ET"] == pytest.approx(0.5) and row["lesion_fp_ET"] == 1
    assert row["lesion_dice_TC"] == pytest.approx(0.5)
    assert row["lesion_dice_WT"] == pytest.approx(0.5) and row["lesion_hd95_WT"] == pytest.approx(187.0)
    assert set(row) == {
        f"lesion_{m}_{r}" for m in ("dice", "hd95", "tp", "fn", "fp") for r in ("WT", "TC", "ET")
    }


def test_evaluate_lesion_wise_adds_the_columns(tmp_path):
    from medseg3d.evaluate import evaluate
    from medseg3d.io import Volume, write_volume

    ref = np.zeros((30, 30, 30), dtype=np.uint8)
    ref[5:15, 5:15, 5:15] = 2
    pred = ref.copy()
    pred[25:29, 25:29, 25:29] = 2
    (tmp_path / "pred").mkdir()
    (tmp_path / "ref").mkdir()
    write_volume(Volume(pred, np.eye(4)), tmp_path / "pred" / "c1.nii.gz")
    write_volume(Volume(ref, np.eye(4)), tmp_path / "ref" / "c1.nii.gz")
    rows, summary = evaluate(tmp_path / "pred", tmp_path / "ref", progress=False, lesion_wise=True)
    assert rows[0]["lesion_dice_WT"] == pytest.approx(0.5) and rows[0]["lesion_fp_WT"] == 1
    assert rows[0]["lesion_dice_ET"] == 1.0  # both empty
    assert "lesion_dice_WT" in summary
    plain, _ = evaluate(tmp_path / "pred", tmp_path / "ref", progress=False)
    assert not any(k.startswith("lesion_") for k in plain[0])


def test_without_distances_the_dice_and_counts_are_the_same_and_hd95_is_nan():
    import math

    ref = np.zeros((30, 30, 30), bool)
    ref[3:10, 3:10, 3:10] = True
    ref[20:26, 20:26, 20:26] = True
    pred = np.zeros_like(ref)
    pred[4:10, 3:10, 3:10] = True
    pred[15:17, 2:4, 25:27] = True  # a false positive far from both lesions
    full = lesion_wise_region(pred, ref)
    quick = lesion_wise_region(pred, ref, distances=False)
    assert {k: full[k] for k in ("dice", "tp", "fn", "fp")} == {
        k: quick[k] for k in ("dice", "tp", "fn", "fp")
    }
    assert math.isnan(quick["hd95"]) and not math.isnan(full["hd95"])
