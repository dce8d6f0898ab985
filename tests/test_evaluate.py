"""``medseg3d evaluate``: grids compared by affine, label numberings detected or refused, volume agreement,
an unwritable metrics file refused in one line."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from medseg3d.errors import InputError
from medseg3d.evaluate import default_labels, evaluate, volume_agreement
from medseg3d.io import Volume, read_volume, write_volume

CASES = ("Brats18_2013_2_1", "Brats18_CBICA_ABM_1")


def _seg(brats_root, case) -> Volume:
    """A shared case's real label map cut to its tumour's box (plus 2 voxels): the same labels, fast tests."""
    vol = read_volume(brats_root / case / f"{case}_seg.nii.gz")
    nz = np.argwhere(vol.array)
    lo, hi = nz.min(0) - 2, nz.max(0) + 3
    affine = vol.affine.copy()
    affine[:3, 3] = vol.affine[:3, :3] @ lo + vol.affine[:3, 3]
    return Volume(np.ascontiguousarray(vol.array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]), affine)


def _relabel(array: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    out = np.zeros_like(array)
    for src, dst in mapping.items():
        out[array == src] = dst
    return out


@pytest.fixture(scope="module")
def segs(brats_root):
    return {c: _seg(brats_root, c) for c in CASES}


def _write_all(folder, vols: dict[str, Volume]):
    folder.mkdir(parents=True, exist_ok=True)
    for case, vol in vols.items():
        write_volume(vol, folder / f"{case}.nii")
    return folder


def _rows(out_csv):
    with open(out_csv) as fh:
        return list(csv.DictReader(fh))


def test_identical_maps_score_one_with_volumes(segs, tmp_path):
    preds = _write_all(tmp_path / "pred", segs)
    refs = _write_all(tmp_path / "ref", segs)
    rows, summary = evaluate(preds, refs, "brats", progress=False)
    for row, case in zip(rows, CASES):
        assert row["dice_WT"] == row["dice_TC"] == row["dice_ET"] == 1.0
        wt = int(np.isin(segs[case].array, (1, 2, 4)).sum()) / 1000.0  # 1 mm voxels: 1000 per ml
        assert row["vol_pred_WT"] == pytest.approx(wt, abs=1e-9) and row["vol_ref_WT"] == pytest.approx(
            wt, abs=1e-9
        )
    header = _rows(preds / "metrics.csv")[0]
    assert "vol_pred_WT" in header and "vol_ref_WT" in header
    assert "Volume agreement over 2 case(s)" in summary
    assert "| WT |" in summary and "| 1.000 | 0.00 |" in summary  # r = 1, no difference


def test_volume_agreement_known_answer():
    ref, pred = [10.0, 20.0, 30.0, 50.0], [12.0, 18.0, 33.0, 45.0]
    rows = [{"vol_ref_WT": r, "vol_pred_WT": p} for r, p in zip(ref, pred)]
    table = volume_agreement(rows, ["WT"])
    r = np.corrcoef(ref, pred)[0, 1]
    mad = np.mean(np.abs(np.subtract(pred, ref)))  # (2 + 2 + 3 + 5) / 4 = 3
    assert mad == 3.0
    assert f"| WT | 27.50 | 27.00 | {r:.3f} | 3.00 |" in table
    assert "nan" in volume_agreement(rows[:1], ["WT"])  # one case: no correlation


@pytest.mark.parametrize("change", ["origin", "spacing"])
def test_prediction_on_another_grid_is_refused(segs, tmp_path, change):
    case = CASES[0]
    vol = segs[case]
    affine = vol.affine.copy()
    if change == "origin":
        affine[0, 3] += 1.0
    else:
        affine[:3, :3] *= 2.0
    preds = _write_all(tmp_path / "pred", {case: Volume(vol.array, affine)})
    refs = _write_all(tmp_path / "ref", {case: vol})
    with pytest.raises(InputError) as e:
        evaluate(preds, refs, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and case in msg and change in msg and "different grids" in msg
    assert not (preds / "metrics.csv").exists()


def test_sub_tolerance_affine_difference_is_accepted(segs, tmp_path):
    case = CASES[0]
    affine = segs[case].affine.copy()
    affine[:3, 3] += 1e-4  # round-off of a resampling, far below the 1e-3 mm tolerance
    preds = _write_all(tmp_path / "pred", {case: Volume(segs[case].array, affine)})
    refs = _write_all(tmp_path / "ref", {case: segs[case]})
    rows, _ = evaluate(preds, refs, progress=False)
    assert rows[0]["dice_WT"] == 1.0


def test_unwritable_metrics_file_is_one_line(segs, tmp_path):
    case = CASES[0]
    preds = _write_all(tmp_path / "pred", {case: segs[case]})
    refs = _write_all(tmp_path / "ref", {case: segs[case]})
    (tmp_path / "folder.csv").mkdir()
    for target, fragment in (
        (tmp_path / "folder.csv", "is a folder"),
        (tmp_path / "no" / "m.csv", "does not exist"),
    ):
        with pytest.raises(InputError) as e:
            evaluate(preds, refs, out_csv=target, progress=False)
        assert fragment in str(e.value) and "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.csv", "pred", "ref"]
    assert list((tmp_path / "folder.csv").iterdir()) == []


# ------------------------------------------------------------------------------------ label numberings


def test_nnunet_numbered_references_are_detected(segs, tmp_path):
    # nnU-Net's BraTS conversion: edema 2 -> 1, NCR/NET 1 -> 2, enhancing 4 -> 3
    nnunet = {c: v.with_array(_relabel(v.array, {1: 2, 2: 1, 4: 3})) for c, v in segs.items()}
    preds = _write_all(tmp_path / "pred", segs)
    refs = _write_all(tmp_path / "ref", nnunet)
    rows, summary = evaluate(preds, refs, "brats", progress=False)
    for row in rows:  # before: label 3 merged into 1, ET 0.000
        assert row["dice_ET"] == row["dice_TC"] == row["dice_WT"] == row["dice_edema"] == 1.0
    assert "Note: references in" in summary and "nnU-Net's BraTS numbering" in summary
    assert "--labels nnunet-brats" in summary
    # said explicitly, no note
    _, summary = evaluate(preds, refs, "brats", ref_labels="nnunet-brats", progress=False)
    assert "Note:" not in summary


def test_brats2012_truth_is_read_as_2012(data_root, tmp_path):
    truth = read_volume(data_root / "brats2012_mha" / "BRATS_HG0015_truth.mha")
    # the truth itself in BraTS 2017+ numbers: edema 1 -> 2, core 2 -> 1 (NCR/NET)
    pred = truth.with_array(_relabel(truth.array, {1: 2, 2: 1}).astype(np.uint8))
    preds = _write_all(tmp_path / "pred", {"BRATS_HG0015": pred})
    rows, summary = evaluate(preds, data_root / "brats2012_mha", "brats", progress=False)
    (row,) = rows
    assert row["dice_WT"] == 1.0 and row["dice_TC"] == 1.0 and row["dice_edema"] == 1.0  # TC was 0.17 before
    assert "ET" not in "".join(k for k in row if k.startswith("dice_"))  # 2012 has no enhancing region
    assert "BRATS 2012 (1 edema, 2 core)" in summary
    assert math.isclose(row["vol_ref_TC"], int((truth.array == 2).sum()) / 1000.0)


def test_ambiguous_numbering_is_refused_with_the_choices(tmp_path):
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[5:9, 5:9, 5:9] = 3
    lab[10, 10, 10] = 1  # too few voxels of 1 and 2 to tell which is the edema
    lab[12, 12, 12] = 2
    vol = Volume(lab, np.eye(4))
    preds = _write_all(tmp_path / "pred", {"c": vol})
    refs = _write_all(tmp_path / "ref", {"c": vol})
    with pytest.raises(InputError) as e:
        evaluate(preds, refs, "brats", progress=False)
    msg = str(e.value)
    assert "[0, 1, 2, 3]" in msg and "nnunet-brats or brats2015" in msg and "\n" not in msg
    rows, _ = evaluate(preds, refs, "brats2015", progress=False)  # said explicitly: accepted
    assert rows[0]["dice_WT"] == 1.0


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"background": 0, "Anterior": 1, "Posterior": 2}, ("background", "Anterior", "Posterior")),
        ({"background": 0, "pancreas": 1, "cancer": 2}, ("background", "pancreas", "cancer")),
        ({"background": 0, "NCR": 1, "edema": 2, "enhancing tumor": 3}, "brats"),
        ({"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}, "brats"),
    ],
)
def test_default_labels_are_a_non_tumour_datasets_own_classes(tmp_path, labels, expected):
    (tmp_path / "labelsTr").mkdir()
    (tmp_path / "dataset.json").write_text(json.dumps({"channel_names": {"0": "MRI"}, "labels": labels}))
    for ref in (tmp_path, tmp_path / "labelsTr"):
        scheme = default_labels(ref)
        assert (scheme if isinstance(scheme, str) else scheme.class_names) == expected
    assert default_labels(tmp_path / "labelsTr" / "nowhere") == "brats"


def test_evaluate_scores_a_non_tumour_dataset_by_its_class_names(tmp_path):
    (tmp_path / "labelsTr").mkdir()
    (tmp_path / "pred").mkdir()
    labels = {"background": 0, "anterior": 1, "posterior": 2}
    (tmp_path / "dataset.json").write_text(json.dumps({"channel_names": {"0": "MRI"}, "labels": labels}))
    ref = np.zeros((8, 8, 8), dtype=np.uint8)
    ref[2:4, 2:6, 2:6] = 1  # 32 voxels
    ref[4:6, 2:6, 2:6] = 2  # 32 voxels
    pred = ref.copy()
    pred[5, 2:6, 2:6] = 0  # 16 posterior voxels missed: Dice 2 * 16 / (32 + 16) = 2/3
    write_volume(Volume(ref, np.eye(4)), tmp_path / "labelsTr" / "c1.nii.gz")
    write_volume(Volume(pred, np.eye(4)), tmp_path / "pred" / "c1.nii.gz")
    rows, summary = evaluate(tmp_path / "pred", tmp_path / "labelsTr", progress=False)
    assert rows[0]["dice_anterior"] == pytest.approx(1.0)
    assert rows[0]["dice_posterior"] == pytest.approx(2 / 3)
    assert "dice_edema" not in rows[0] and "dice_posterior" in summary
