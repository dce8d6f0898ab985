"""Label-map post-processing after inference: small enhancing tumour relabelled, non-BraTS models refused."""

import numpy as np
import pytest

from medseg3d.errors import InputError
from medseg3d.labels import get_scheme
from medseg3d.postprocess import relabel_small_enhancing, remove_small_components


def _case_with_enhancing(n_enhancing: int) -> np.ndarray:
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[2:6, 2:6, 2:6] = 2  # edema
    labels[3:5, 3:5, 3] = 1  # necrosis
    labels.flat[np.flatnonzero(labels == 2)[:n_enhancing]] = 4
    return labels


def _write_case(folder, case_id: str, reference: np.ndarray, affine) -> None:
    """A BraTS case folder: four flat channels and ``reference`` as its label map."""
    from medseg3d.io import Volume, write_volume

    folder.mkdir(parents=True, exist_ok=True)
    for m in ("flair", "t1", "t1ce", "t2"):
        write_volume(Volume(np.ones(reference.shape, np.float32), affine), folder / f"{case_id}_{m}.nii.gz")
    write_volume(Volume(reference, affine), folder / f"{case_id}_seg.nii.gz")


def _reference_and_far_blob(found_enhancing: int) -> tuple[np.ndarray, np.ndarray]:
    """(reference, prediction) on a 30 x 10 x 10 grid of 1 mm voxels: the reference's tumour (5 enhancing voxels)
    in x 0-9; the prediction finds ``found_enhancing`` of those and adds an 8-voxel blob 20 mm away (x 5 -> 25)."""
    ref = np.zeros((30, 10, 10), np.uint8)
    ref[:10] = _case_with_enhancing(5)
    pred = ref.copy()
    pred[:10] = _case_with_enhancing(found_enhancing)
    pred[25:27, 2:4, 2:4] = 2
    return ref, pred


@pytest.mark.parametrize("scheme", ["brats", "regions", "brats2015"])
def test_small_enhancing_becomes_necrosis(scheme):
    labels = _case_with_enhancing(3)
    out = relabel_small_enhancing(labels, get_scheme(scheme), 4)
    assert (out == 4).sum() == 0 and (out == 1).sum() == (labels == 1).sum() + 3
    # tumour core and whole tumour are unchanged
    assert np.array_equal(np.isin(out, (1, 4)), np.isin(labels, (1, 4))) and np.array_equal(out > 0, labels > 0)
    assert (labels == 4).sum() == 3  # the input is not modified


def test_enough_enhancing_or_none_is_kept():
    scheme = get_scheme("brats")
    labels = _case_with_enhancing(3)
    assert np.array_equal(relabel_small_enhancing(labels, scheme, 3), labels)  # 3 voxels is not fewer than 3
    assert np.array_equal(relabel_small_enhancing(labels, scheme, 0), labels)  # off
    none = _case_with_enhancing(0)
    assert np.array_equal(relabel_small_enhancing(none, scheme, 100), none)


def test_non_brats_models_are_refused():
    for scheme in ("binary", "hand", "brats2012"):
        with pytest.raises(InputError, match="needs a BraTS model"):
            relabel_small_enhancing(_case_with_enhancing(0), get_scheme(scheme), 10)


def test_small_components_removed_known_answer():
    labels = np.zeros((12, 12, 12), np.uint8)
    labels[1:5, 1:5, 1:5] = 2  # 64 voxels
    labels[9, 9, 9] = 4  # an isolated voxel
    out = remove_small_components(labels, 10)
    assert out[9, 9, 9] == 0 and (out == 2).sum() == 64


def test_sweep_script_known_answer(tmp_path, capsys):
    from conftest import load_script

    from medseg3d.io import Volume, write_volume

    sweep = load_script("postprocess_sweep")
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    ref, pred = _reference_and_far_blob(3)  # 3 of the 5 enhancing voxels found: ET Dice 2*3/8, TC 2*7/(7+9)
    _write_case(tmp_path / "cv" / "fold0" / "heldout" / "c1", "c1", ref, affine)
    (tmp_path / "cv" / "fold0" / "pred-last-sw").mkdir()
    write_volume(Volume(pred, affine), tmp_path / "cv" / "fold0" / "pred-last-sw" / "c1.nii.gz")
    assert sweep.main([str(tmp_path / "cv"), "--distances", "0,18,20", "--min-enhancing", "0,3,4"]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    table = {(r[0].strip("| "), r[1]): r for r in rows[1:10]}
    wt_with_blob = 2 * 64 / (64 + 72)
    assert table[("0", "0")][2:5] == [f"{wt_with_blob:.4f}", "0.8750", "0.7500"]
    assert table[("0", "3")][2:5] == table[("0", "0")][2:5] and table[("0", "3")][-1] == "- |"
    assert table[("0", "4")][2:5] == [f"{wt_with_blob:.4f}", "0.8750", "0.0000"]
    assert table[("0", "4")][7] == "373.1"  # no enhancing tumour left: the BraTS penalty
    assert table[("18", "0")][2:5] == ["1.0000", "0.8750", "0.7500"]  # the blob is 20 mm away: removed
    assert table[("18", "0")][5] == "0.0"  # and the whole tumour's HD95 drops to 0
    assert table[("20", "0")][2:5] == table[("0", "0")][2:5]  # 20 mm is not farther than 20: kept
    assert table[("18", "4")][2:5] == ["1.0000", "0.8750", "0.0000"]

    # kept records have no heldout/ links: --data finds the references by the predicted cases' names, and
    # the sweep is the same
    kept = tmp_path / "kept" / "fold0" / "pred-last-sw"
    kept.mkdir(parents=True)
    (kept / "c1.nii.gz").write_bytes((tmp_path / "cv" / "fold0" / "pred-last-sw" / "c1.nii.gz").read_bytes())
    assert sweep.main([str(tmp_path / "kept"), "--data", str(tmp_path / "cv" / "fold0" / "heldout"),
                       "--distances", "0,18,20", "--min-enhancing", "0,3,4"]) == 0
    again = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert again[1:] == rows[1:]
    (kept / "c2.nii.gz").write_bytes((kept / "c1.nii.gz").read_bytes())  # a case the data folder lacks
    with pytest.raises(SystemExit, match="lacks the case"):
        sweep.main([str(tmp_path / "kept"), "--data", str(tmp_path / "cv" / "fold0" / "heldout")])
    with pytest.raises(SystemExit, match="no such folder"):
        sweep.main([str(tmp_path / "kept"), "--data", str(tmp_path / "missing")])


def test_negative_minimums_are_refused(brats_root):
    from medseg3d.models import bundled_models
    from medseg3d.predict import segment

    if "brats" not in bundled_models():
        pytest.skip("no bundled brats model installed")
    with pytest.raises(InputError, match="--min-enhancing must be a number of voxels >= 0"):
        segment("brats-v1", brats_root / "Brats18_2013_2_1", min_enhancing=-1)


def test_far_components_are_removed_by_their_distance_in_mm_and_near_ones_kept():
    from medseg3d.postprocess import remove_far_components

    labels = np.zeros((60, 20, 20), np.uint8)
    labels[5:15, 5:15, 5:15] = 2     # the main tumour, 1000 voxels
    labels[18:20, 8:10, 8:10] = 1    # 3 voxels past its edge (index 14 -> 18: 4 voxels apart)
    labels[50:53, 8:11, 8:11] = 4    # 36 voxels past its edge
    # 1 mm voxels: the near lesion is 4 mm away, the far one 36 mm
    out = remove_far_components(labels, (1.0, 1.0, 1.0), 20)
    assert out[50:53, 8:11, 8:11].sum() == 0 and (out[18:20, 8:10, 8:10] == 1).all() and (out[5:15, 5:15, 5:15] == 2).all()
    # the same voxels 0.5 mm apart along x: the far one is 18 mm away and stays at 20 mm, goes at 15 mm
    assert np.array_equal(remove_far_components(labels, (0.5, 1.0, 1.0), 20), labels)
    assert remove_far_components(labels, (0.5, 1.0, 1.0), 15)[50:53].sum() == 0
    assert np.array_equal(remove_far_components(labels, (1.0, 1.0, 1.0), 0), labels)  # off
    single = np.zeros_like(labels)
    single[5:15, 5:15, 5:15] = 2
    assert np.array_equal(remove_far_components(single, (1.0, 1.0, 1.0), 1), single)


def test_a_negative_distance_is_refused_in_one_line():
    from medseg3d.errors import InputError
    from medseg3d.labels import get_scheme
    from medseg3d.postprocess import check_options

    for bad in (-1.0, float("nan")):
        with pytest.raises(InputError, match="--max-distance must be a distance in mm >= 0"):
            check_options(get_scheme("brats"), 0, 0, bad)


def test_nested_choice_never_sees_the_fold_it_is_scored_on():
    from conftest import load_script

    sweep = load_script("postprocess_sweep")
    half = {f"dice_{r}": 0.5 for r in ("WT", "TC", "ET")}
    best = {f"dice_{r}": 1.0 for r in ("WT", "TC", "ET")}
    base = {"a": half, "b": half, "c": half}
    rows = [{"max_distance": 0.0, "min_enhancing": 0, "changed": {}},
            {"max_distance": 20.0, "min_enhancing": 0, "changed": {"a": best}}]  # helps case a only
    chosen = {f["fold"]: f for f in sweep.nested(rows, base, {"a": "fold0", "b": "fold1", "c": "fold1"})}
    # fold 0 holds a: the other folds (b, c) cannot tell the settings apart, so the first (none) is kept and
    # a scores as without post-processing, although 20 mm would have helped it
    assert chosen["fold0"]["max_distance"] == 0.0 and chosen["fold0"]["scores"] == {"a": half}
    # fold 1: chosen on a, where 20 mm helps; b and c unchanged by it
    assert chosen["fold1"]["max_distance"] == 20.0 and chosen["fold1"]["scores"] == {"b": half, "c": half}


def test_postprocess_variant_scores_the_setting_as_predict_would(tmp_path, capsys):
    """A far blob 20 mm from the tumour: --max-distance 18 removes it, in the variant's labels and scores."""
    import csv

    from conftest import load_script

    from medseg3d.io import Volume, read_volume, write_volume

    variant = load_script("postprocess_variant")
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    ref, pred = _reference_and_far_blob(5)  # every enhancing voxel found, and the blob 20 mm away
    _write_case(tmp_path / "data" / "c1", "c1", ref, affine)
    saved = tmp_path / "cv" / "fold0" / "pred-ens"
    saved.mkdir(parents=True)
    write_volume(Volume(pred, affine), saved / "c1.nii.gz")

    assert variant.main([str(tmp_path / "cv"), "--variant", "ens", "--max-distance", "18", "--data",
                         str(tmp_path / "data"), "--keep-labels"]) == 0
    assert "fold0: 1 label map(s) changed" in capsys.readouterr().out
    out = tmp_path / "cv" / "fold0" / "pred-ens-md18"
    written = read_volume(out / "c1.nii.gz")
    assert np.array_equal(written.array, ref) and np.allclose(written.affine, affine)
    row = next(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert float(row["dice_WT"]) == 1.0 and float(row["hd95_WT"]) == 0.0
    assert float(row["dice_ET"]) == 1.0
    assert np.array_equal(read_volume(saved / "c1.nii.gz").array, pred)  # the input maps are untouched

    # 20 mm is not farther than 20: nothing changes; the maps are deleted after scoring (no --keep-labels)
    assert variant.main([str(tmp_path / "cv"), "--variant", "ens", "--max-distance", "20", "--data",
                         str(tmp_path / "data")]) == 0
    out20 = tmp_path / "cv" / "fold0" / "pred-ens-md20"
    assert not list(out20.glob("*.nii.gz"))
    assert float(next(csv.DictReader((out20 / "metrics.csv").read_text().splitlines()))["dice_WT"]) == pytest.approx(2 * 64 / (64 + 72), abs=1e-5)
    scores_only = tmp_path / "cv" / "fold1" / "pred-ens"  # a fold kept with its scores only
    scores_only.mkdir(parents=True)
    (scores_only / "metrics.csv").write_text("case,dice_WT\n")
    assert variant.main([str(tmp_path / "cv"), "--variant", "ens", "--max-distance", "20", "--data",
                         str(tmp_path / "data")]) == 0
    assert "fold1: pred-ens holds scores but no label maps (not kept); left out" in capsys.readouterr().out
    assert not (tmp_path / "cv" / "fold1" / "pred-ens-md20").exists()
    with pytest.raises(SystemExit, match="give --max-distance or --min-enhancing"):
        variant.main([str(tmp_path / "cv"), "--variant", "ens"])
    with pytest.raises(SystemExit, match="no fold under"):
        variant.main([str(tmp_path / "cv"), "--variant", "missing", "--max-distance", "20"])
    with pytest.raises(SystemExit, match="has no heldout/"):
        variant.main([str(tmp_path / "cv"), "--variant", "ens", "--max-distance", "20"])


def test_far_tumour_in_references_known_answer(tmp_path, capsys):
    from conftest import load_script


    script = load_script("far_tumour_in_references")
    labels = np.zeros((60, 20, 20), np.uint8)
    labels[5:15, 5:15, 5:15] = 2   # main tumour
    labels[50:53, 8:11, 8:11] = 4  # 27 voxels whose nearest is 36 mm (1 mm voxels) from it
    for name, seg in (("multi", labels), ("single", np.where(labels == 4, 0, labels).astype(np.uint8))):
        _write_case(tmp_path / name, name, seg, np.eye(4))
    assert script.main([str(tmp_path), "--distances", "20,40"]) == 0
    out = capsys.readouterr().out
    assert "| multi | 1.0 | 0.027 | 0.000 |" in out  # 1027 voxels of 1 mm^3; 27 of them beyond 20 mm, none beyond 40
    assert "| single |" not in out
    assert "20 mm: 1 of 2 references have tumour beyond it; most 0.027 ml (multi)" in out
    assert "40 mm: 0 of 2 references have tumour beyond it\n" in out
    with pytest.raises(SystemExit, match="must be above 0"):
        script.main([str(tmp_path), "--distances", "0"])


def test_postprocess_counts_exactly_the_voxels_that_far_removal_took():
    from medseg3d.labels import BRATS
    from medseg3d.postprocess import postprocess, postprocess_counted

    labels = np.zeros((60, 20, 20), np.uint8)
    labels[2:12, 5:15, 5:15] = 2  # 1000 voxels of edema
    labels[45:48, 5:8, 5:8] = 4  # 27 voxels, 34 mm from it at 1 mm spacing
    kept, removed = postprocess_counted(labels, BRATS, spacing=(1, 1, 1), max_distance_mm=20.0)
    assert removed == 27 and (kept > 0).sum() == 1000
    assert np.array_equal(kept, postprocess(labels, BRATS, spacing=(1, 1, 1), max_distance_mm=20.0))
    same, none_removed = postprocess_counted(labels, BRATS, spacing=(1, 1, 1), max_distance_mm=40.0)
    assert none_removed == 0 and np.array_equal(same, labels)
    # 2 mm voxels: 68 mm apart, and the count is of voxels, not of mm^3
    assert postprocess_counted(labels, BRATS, spacing=(2, 2, 2), max_distance_mm=40.0)[1] == 27
