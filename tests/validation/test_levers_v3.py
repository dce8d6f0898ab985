"""validation/levers_v3.py (issue #40): the threshold chosen on the other folds only, and the scores of a
sweep unchanged by the crop to the tumours' box."""

import numpy as np
from conftest import VALIDATION, load_script

levers = load_script("levers_v3", VALIDATION)


def test_safe_choice_takes_the_largest_costless_threshold_of_the_other_folds():
    settings = [("total", 0), ("total", 500), ("total", 1000), ("largest", 1000)]
    # case a (fold 0) loses at 1,000 (its ET goes); b, c (folds 1, 2) only at nothing
    ones = np.ones((4, 6))
    a = ones.copy()
    a[2] = 0.5
    table = {"a": a, "b": ones.copy(), "c": ones.copy()}
    chosen = levers.safe_choice(table, {"a": 0, "b": 1, "c": 2}, settings)
    assert chosen[0] == 2  # b and c: 1,000 costs nothing, the largest "total" one
    assert chosen[1] == 1 and chosen[2] == 1  # a is among the others: 1,000 costs, 500 does not


def test_score_is_the_same_on_the_crop_and_on_the_whole_grid():
    ref = np.zeros((60, 60, 60), np.uint8)
    ref[20:30, 20:30, 20:30] = 2
    ref[23:27, 23:27, 23:27] = 4
    pred = np.zeros_like(ref)
    pred[21:31, 20:30, 20:30] = 2
    pred[24:27, 23:27, 23:27] = 4
    pred[45:47, 45:47, 45:47] = 2  # a false lesion 20 voxels away: lesion-wise WT pays for it
    cropped = levers.crop_pair(pred, ref)
    assert cropped[0].shape[0] < 60
    whole = levers.score(pred, ref, (1.0, 1.0, 1.0), "whole")
    assert np.allclose(levers.score(*cropped, (1.0, 1.0, 1.0), "crop"), whole)
    wt_dice = 2 * 900 / (1008 + 1000)  # 900 shared of 1,000 reference and 1,000 + 8 predicted voxels
    assert np.isclose(whole[0], wt_dice) and np.isclose(whole[3], 2 * 900 / 2000 / 2)  # + 1 false positive
