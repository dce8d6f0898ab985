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


def _brats_case(root, case_id, ref, rng):
    import nibabel as nib

    case = root / case_id
    case.mkdir(parents=True)
    for m in ("flair", "t1", "t1ce", "t2"):
        nib.save(
            nib.Nifti1Image(rng.random(ref.shape, dtype=np.float32), np.eye(4)),
            case / f"{case_id}_{m}.nii.gz",
        )
    nib.save(nib.Nifti1Image(ref, np.eye(4)), case / f"{case_id}_seg.nii.gz")


def test_the_enhancing_rule_is_chosen_where_held_out_variants_show_its_benefit(tmp_path):
    """Four real BraTS cases (512 voxels of enhancing tumour each, segmented perfectly) and their four
    non-enhancing variants (label 4 -> 1), on which the model calls a false 27-voxel enhancing speck. Without
    the variants the rule can only cost, so it stays off; with them each fold takes 250 mm^3, the smallest
    threshold that clears the specks and leaves the real 512-voxel regions (1,000 would remove them)."""
    import json
    import shutil

    import nibabel as nib

    from medseg3d.datasets import find_cases
    from medseg3d.experiments.crossval.enhancing import ENHANCING_MM3, VARIANTS
    from medseg3d.experiments.crossval.scoring import choose_postprocessing
    from medseg3d.models import bundled_models

    data, variants, run = tmp_path / "data", tmp_path / "variants", tmp_path / "run"
    ref = np.zeros((40, 40, 40), dtype=np.uint8)
    ref[5:25, 5:25, 5:25] = 2
    ref[9:21, 9:21, 9:21] = 1
    ref[11:19, 11:19, 11:19] = 4  # 512 enhancing voxels
    variant_ref = np.where(ref == 4, 1, ref).astype(np.uint8)
    variant_pred = variant_ref.copy()
    variant_pred[14:17, 14:17, 14:17] = 4  # the false speck: 27 voxels
    rng = np.random.default_rng(0)
    for i in range(4):
        _brats_case(data, f"c{i}", ref, rng)
        _brats_case(variants, f"c{i}_nonenh", variant_ref, rng)
        for name, pred, case_id in (("final", ref, f"c{i}"), (VARIANTS, variant_pred, f"c{i}_nonenh")):
            held = run / f"fold{i % 2}" / f"pred-{name}"
            held.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(pred, np.eye(4)), held / f"{case_id}.nii.gz")
    shutil.copyfile(bundled_models()["brats-v1"], run / "fold0" / "model.safetensors")
    cases = {c.case_id: c for c in find_cases(data)}
    record = {"folds": 2, "dataset": str(data)}

    alone = choose_postprocessing(run, record, cases, say=lambda *a: None)
    assert (
        alone["per_fold_min_enhancing_mm3"] == {"0": 0.0, "1": 0.0} and alone["chosen_min_enhancing_mm3"] == 0
    )
    assert alone["heldout_variants"] == 0 and list(alone["min_enhancing_score_by_group"]) == ["real"]
    real = alone["min_enhancing_score_by_group"]["real"]
    assert real[: ENHANCING_MM3.index(1000.0)] == pytest.approx([1.0] * 3) and real[-1] == pytest.approx(0.0)

    (run / "postprocess.json").unlink()
    said = []
    result = choose_postprocessing(run, record | {"heldout_variants": str(variants)}, cases, say=said.append)
    assert result["per_fold_min_enhancing_mm3"] == {"0": 250.0, "1": 250.0}
    assert result["chosen_min_enhancing_mm3"] == 250.0 and result["heldout_variants"] == 4
    groups = result["min_enhancing_score_by_group"]
    assert groups["variants"][0] == pytest.approx(0.0) and groups["variants"][1] == pytest.approx(1.0)
    assert "enhancing tumour under 250 mm^3 -> necrosis (0: off; 4 held-out variants)" in said[0]
    # the variants post-processed by their fold's choice are scored against their own references
    rows = (run / "fold1" / f"pred-{VARIANTS}-pp" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert len(rows) == 3 and all(float(r.split(",")[header.index("dice_ET")]) == 1.0 for r in rows[1:])
    assert json.loads((run / "postprocess.json").read_text()) == result


def test_heldout_variants_are_those_whose_parent_the_fold_holds_out(tmp_path):
    from medseg3d.experiments.crossval.enhancing import has_enhancing_rule, heldout_variants

    rng = np.random.default_rng(0)
    ref = np.zeros((8, 8, 8), dtype=np.uint8)
    ref[2:5, 2:5, 2:5] = 1
    for case_id in ("a_nonenh", "b_nonenh", "c"):
        _brats_case(tmp_path, case_id, ref, rng)
    assert [c.case_id for c in heldout_variants(tmp_path, ["a", "c"])] == ["a_nonenh"]
    assert heldout_variants(tmp_path, ["c"]) == []
    assert has_enhancing_rule(get_scheme("brats")) and not has_enhancing_rule(get_scheme("brats2012"))


def test_each_fold_segments_the_variants_of_the_cases_it_holds_out(tmp_path):
    """score_variants runs the fold's model on the variants whose parent the fold holds out (none other) and
    scores them against the variants' own labels; fold_scored then waits for both passes."""
    import shutil

    from medseg3d.datasets import fold_ids, make_split, save_split
    from medseg3d.experiments.crossval.enhancing import VARIANTS
    from medseg3d.experiments.crossval.scoring import fold_scored, score_variants
    from medseg3d.models import bundled_models

    run, data, variants = tmp_path / "run", tmp_path / "data", tmp_path / "variants"
    ref = np.zeros((24, 24, 24), dtype=np.uint8)
    ref[6:14, 6:14, 6:14] = 2
    ref[8:12, 8:12, 8:12] = 1
    rng = np.random.default_rng(0)
    for i in range(4):
        _brats_case(data, f"c{i}", ref, rng)
        _brats_case(variants, f"c{i}_nonenh", ref, rng)
    split = make_split([f"c{i}" for i in range(4)], folds=2, seed=0)
    save_split(split, run / "split.json")
    (run / "fold0").mkdir()
    shutil.copyfile(bundled_models()["brats-v1"], run / "fold0" / "model.safetensors")
    record = {"folds": 2, "members": ["m"], "dataset": str(data), "heldout_variants": str(variants)}
    assert score_variants(run, record, 0, say=lambda *a: None)
    maps = sorted(p.name for p in (run / "fold0" / f"pred-{VARIANTS}").glob("*.nii.gz"))
    assert maps == sorted(f"{c}_nonenh.nii.gz" for c in fold_ids(split, 0)[1])
    rows = (run / "fold0" / f"pred-{VARIANTS}" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "lesion_dice_ET" in rows[0]
    assert not score_variants(run, record, 0)  # scored already
    assert not fold_scored(run, record, 0)  # the real cases and the mirrored passes are still missing
    assert not score_variants(run, record | {"heldout_variants": None}, 1)  # a run without variants
