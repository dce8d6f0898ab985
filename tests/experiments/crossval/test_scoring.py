"""The candidates crossval's nested choice scores: far-component distances, and for BraTS the lesion-size
rule, judged by whole-case and lesion-wise Dice together."""

import numpy as np
import pytest

from medseg3d.experiments.crossval.scoring import (
    DISTANCES_MM,
    LESION_RULES_MM3,
    _dice_table,
    _lesion_rules,
)
from medseg3d.labels import get_scheme, scheme_from_labels


def _tumour_and_a_false_blob():
    ref = np.zeros((48, 48, 48), dtype=np.uint8)
    ref[5:15, 5:15, 5:15] = 2  # 1,000 voxels of edema
    ref[8:12, 8:12, 8:12] = 1  # a core of 64
    ref[9:11, 9:11, 9:11] = 4  # 8 enhancing
    pred = ref.copy()
    pred[40:45, 40:45, 40:45] = 2  # a false 125-voxel blob about 45 mm from the tumour
    return pred, ref


def test_a_false_blob_is_removed_by_the_lesion_rule_or_the_far_removal_and_lesion_wise_dice_sees_it():
    pred, ref = _tumour_and_a_false_blob()
    scheme = get_scheme("brats")
    rules = ({}, {"WT": 200.0})
    table = _dice_table(pred, ref, scheme, ["WT", "TC", "ET"], (1.0, 1.0, 1.0), rules)
    n = len(DISTANCES_MM)
    assert table.shape == (2 * n, 3)  # rule-major: (rule, distance)
    whole_wt = 2 * 1000 / (1000 + 1125)
    # off: WT is the mean of the whole-case Dice and the lesion-wise Dice (one lesion found, one false: 1/2)
    assert table[0, 0] == pytest.approx((whole_wt + 0.5) / 2, abs=1e-3)
    assert table[0, 1] == pytest.approx(1.0) and table[0, 2] == pytest.approx(1.0)  # core untouched
    assert table[n].tolist() == pytest.approx([1.0, 1.0, 1.0])  # the rule alone removes the blob
    far = DISTANCES_MM.index(20.0)
    assert table[far].tolist() == pytest.approx([1.0, 1.0, 1.0])  # so does the far removal at 20 mm
    assert table[0, 0] < table[n, 0]


def test_without_lesion_rules_the_score_is_the_whole_case_dice():
    pred, ref = _tumour_and_a_false_blob()
    table = _dice_table(pred, ref, get_scheme("brats"), ["WT"], (1.0, 1.0, 1.0))
    assert table.shape == (len(DISTANCES_MM), 1)
    assert table[0, 0] == pytest.approx(2 * 1000 / (1000 + 1125), abs=1e-6)


def test_lesion_rules_are_tried_for_brats_labels_only():
    assert _lesion_rules(get_scheme("brats")) == LESION_RULES_MM3 and LESION_RULES_MM3[0] == {}
    assert _lesion_rules(get_scheme("brats2012")) == ({},)  # no enhancing region to demote
    hippocampus = scheme_from_labels({"background": 0, "anterior": 1, "posterior": 2})
    assert _lesion_rules(hippocampus) == ({},)


def test_the_nested_choice_takes_the_lesion_rule_that_removes_false_blobs_without_touching_tumours(tmp_path):
    """Four BraTS cases in two folds, each predicted as its reference plus a false 125-voxel blob 3 mm from
    the tumour (so no far removal reaches it): the gentlest lesion rule (WT 500 mm^3) removes every blob and
    nothing else, and is chosen in each fold; the stricter rules demote the 64-voxel core too."""
    import json
    import shutil

    import nibabel as nib

    from medseg3d.datasets import find_cases
    from medseg3d.experiments.crossval.scoring import choose_postprocessing
    from medseg3d.models import bundled_models

    data, run = tmp_path / "data", tmp_path / "run"
    ref = np.zeros((40, 40, 40), dtype=np.uint8)
    ref[5:15, 5:15, 5:15] = 2
    ref[7:13, 7:13, 7:13] = 1  # a core of 216 voxels
    ref[8:12, 8:12, 8:12] = 4  # 64 enhancing
    pred = ref.copy()
    pred[18:23, 5:10, 5:10] = 2  # the blob: 3 voxels from the tumour, 125 voxels
    rng = np.random.default_rng(0)
    for i in range(4):
        case = data / f"c{i}"
        case.mkdir(parents=True)
        for m in ("flair", "t1", "t1ce", "t2"):
            nib.save(
                nib.Nifti1Image(rng.random((40, 40, 40), dtype=np.float32), np.eye(4)),
                case / f"c{i}_{m}.nii.gz",
            )
        nib.save(nib.Nifti1Image(ref, np.eye(4)), case / f"c{i}_seg.nii.gz")
        held = run / f"fold{i % 2}" / "pred-final"
        held.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(pred, np.eye(4)), held / f"c{i}.nii.gz")
    shutil.copyfile(bundled_models()["brats-v1"], run / "fold0" / "model.safetensors")  # its label scheme
    said = []
    cases = {c.case_id: c for c in find_cases(data)}
    result = choose_postprocessing(run, {"folds": 2, "dataset": str(data)}, cases, say=said.append)
    gentle = LESION_RULES_MM3[1]
    assert (
        result["per_fold_lesion_mm3"] == {"0": gentle, "1": gentle} and result["chosen_lesion_mm3"] == gentle
    )
    assert result["chosen_mm"] == 0.0 and result["chosen_mirror"] is False  # ties: gentlest, no mirrored maps
    assert result["judged_by"] == "mean of Dice and lesion-wise Dice"
    # none: WT = (whole-case Dice 2 * 1000 / 2125 + lesion-wise 1/2) / 2; TC and ET 1
    none = ((2 * 1000 / 2125 + 0.5) / 2 + 1 + 1) / 3
    assert result["nested_mean_dice"] == pytest.approx(1.0) and result["none_mean_dice"] == pytest.approx(
        none, abs=1e-4
    )
    scores = result["mean_score_by_lesion_rule"]
    assert scores[1] == pytest.approx(1.0) and scores[1] > scores[0] and scores[1] > scores[3]
    assert "lesion-size rule WT 500, TC 50, ET 25" in said[0]
    rows = (run / "fold1" / "pred-final-pp" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # the fold's 2 cases, scored after the fold's choice
    assert json.loads((run / "postprocess.json").read_text()) == result
