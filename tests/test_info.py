"""``describe``: image files, case folders, datasets and the problems it must list."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medseg3d.errors import InputError
from medseg3d.info import describe

CASE = "Brats18_2013_20_1"


def _nifti(path, array, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))


def _img(seed, shape=(12, 10, 8)):
    a = np.random.default_rng(seed).integers(1, 300, size=shape).astype(np.int16)
    a[:2] = 0
    return a


def test_describe_label_file(brats_root):
    text = describe(brats_root / CASE / f"{CASE}_seg.nii.gz")
    assert "shape (240, 240, 155)" in text
    assert "spacing (1, 1, 1) mm" in text
    assert "orientation LPS" in text
    assert "dtype int16" in text and "min 0, max 4" in text
    assert "0: 8710620" in text and "1: 64066" in text and "2: 109935" in text and "4: 43379" in text


def test_describe_float_label_file(data_root):
    text = describe(data_root / "brats2015_labels" / f"{CASE}_seg_brats2015.nii.gz")
    assert "dtype float32" in text and "3: 22228" in text


def test_describe_image_file(brats_root):
    text = describe(brats_root / CASE / f"{CASE}_flair.nii.gz")
    assert "dtype int16, min 0, max 634" in text
    assert "label values" not in text  # an MRI is not a label map
    assert "non-zero voxels" in text


def test_describe_mha_file(data_root):
    text = describe(data_root / "brats2012_mha" / "BRATS_HG0015_truth.mha")
    assert "shape (160, 216, 176)" in text and "[itk]" in text
    assert "1: 108706" in text and "2: 72310" in text


def test_describe_case_folder(brats_root):
    text = describe(brats_root / CASE)
    assert text.startswith("case folder (brats layout)")
    for m in ("flair", "t1", "t1ce", "t2", "label"):
        assert f"  {m}: " in text
    assert text.count("shape (240, 240, 155)") == 5
    assert "all 5 files share one grid" in text
    assert "problems: none" in text


def test_describe_2012_mha_folder(data_root):
    text = describe(data_root / "brats2012_mha")
    assert "brats-mha" in text and "BRATS_HG0015" in text
    assert "BRATS_HG0015_T1C.mha" in text
    assert text.count("shape (160, 216, 176)") == 5
    assert "share one grid" in text and "problems: none" in text


def test_describe_broken_dataset_lists_every_problem(tmp_path, brats_root):
    root = tmp_path / "ds"
    # a real, complete case (linked)
    (root / CASE).parent.mkdir(parents=True)
    (root / CASE).symlink_to(brats_root / CASE, target_is_directory=True)
    # a case without t2
    for k, m in enumerate(("flair", "t1", "t1ce")):
        _nifti(root / "no_t2" / f"no_t2_{m}.nii.gz", _img(k))
    _nifti(root / "no_t2" / "no_t2_seg.nii.gz", np.zeros((12, 10, 8), np.uint8))
    # a case whose channels are on different grids
    shifted = np.eye(4)
    shifted[1, 3] = 3.0
    for k, m in enumerate(("flair", "t1", "t1ce", "t2")):
        _nifti(root / "grids" / f"grids_{m}.nii.gz", _img(k), shifted if m == "t1ce" else None)
    _nifti(root / "grids" / "grids_seg.nii.gz", np.zeros((12, 10, 8), np.uint8))
    # a case with an unreadable file and an unknown label value
    for k, m in enumerate(("flair", "t1", "t1ce")):
        _nifti(root / "broken" / f"broken_{m}.nii.gz", _img(k))
    (root / "broken" / "broken_t2.nii.gz").write_bytes(b"\x1f\x8b\x08 truncated")
    lab = np.zeros((12, 10, 8), np.uint8)
    lab[5, 5, 5] = 9
    _nifti(root / "broken" / "broken_seg.nii.gz", lab)
    # an unlabelled case in a labelled dataset
    for k, m in enumerate(("flair", "t1", "t1ce", "t2")):
        _nifti(root / "nolabel" / f"nolabel_{m}.nii.gz", _img(k))

    text = describe(root, progress=False)
    assert "layout: brats" in text
    assert "cases: 5" in text
    assert "channels: flair, t1, t1ce, t2" in text
    assert "labelled cases: 4 of 5" in text
    problems = [ln for ln in text.splitlines() if ln.startswith("    - ")]
    joined = "\n".join(problems)
    assert len(problems) == 5, text
    assert any("no_t2" in p and "t2" in p and "missing" in p for p in problems), joined
    assert any("grids" in p and "t1ce" in p and "differs" in p for p in problems), joined
    assert any("broken" in p and "t2" in p and "cannot read" in p for p in problems), joined
    assert any("nolabel" in p and "no label" in p for p in problems), joined
    assert any("broken" in p and "label values [9]" in p for p in problems), joined
    # label values over the cases, with the real case's values and the stray 9
    assert "label values: 0:" in text and "4: 43379 voxels" in text and "9: 1 voxels" in text
    assert "label schemes that fit: none" in text
    assert CASE not in joined  # the real case is fine


def test_describe_csv_dataset(tmp_path, brats_root):
    csv = tmp_path / "list.csv"
    csv.write_text(
        "case,flair,label\n"
        f"a,{brats_root / CASE / (CASE + '_flair.nii.gz')},{brats_root / CASE / (CASE + '_seg.nii.gz')}\n"
        f"b,{tmp_path / 'gone.nii.gz'},\n",
        encoding="utf-8",
    )
    text = describe(csv, progress=False)
    assert "layout: csv" in text and "cases: 2" in text
    assert "gone.nii.gz" in text and "missing" in text
    assert "label schemes that fit: brats" in text


def test_describe_errors(tmp_path):
    with pytest.raises(InputError) as e:
        describe(tmp_path / "missing.nii.gz")
    assert "no such file" in str(e.value)
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(InputError):
        describe(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError) as e:
        describe(tmp_path / "empty")
    assert "no cases found" in str(e.value) and "\n" not in str(e.value)


def test_describe_nnunet_checks_declared_labels(tmp_path):
    import json

    (tmp_path / "dataset.json").write_text(
        json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0, "bone": 1}}), encoding="utf-8"
    )
    for i in range(2):
        _nifti(tmp_path / "imagesTr" / f"c{i}_0000.nii.gz", _img(i))
        lab = np.zeros((12, 10, 8), np.uint8)
        lab[4:6, 4:6, 4:6] = 1 + i  # c1 holds a 2, which dataset.json does not declare
        _nifti(tmp_path / "labelsTr" / f"c{i}.nii.gz", lab)
    text = describe(tmp_path, progress=False)
    assert "layout: nnunet" in text and "channels: ct" in text
    problems = [ln for ln in text.splitlines() if ln.startswith("    - ")]
    assert problems == ["    - case c1: label values [2] are not among [0, 1]"], text


# ------------------------------------------------------------------ inputs that other commands refuse


def _problems(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("    - ")]


def test_negative_voxels_in_a_wide_int16_range(tmp_path):
    # few values over the whole int16 range: int16 arithmetic wrapped round and bincount raised before
    a = np.zeros((12, 10, 8), np.int16)
    a[0, 0, 0], a[1, 1, 1], a[2, 2, 2] = -30000, 30000, -1
    _nifti(tmp_path / "wide.nii.gz", a)
    text = describe(tmp_path / "wide.nii.gz")
    assert "label values -30000: 1" in text and "30000: 1" in text and "-1: 1" in text
    assert "problems: none" in text
    b = np.random.default_rng(0).integers(-300, 300, size=(12, 10, 8)).astype(np.int16)
    _nifti(tmp_path / "noisy.nii.gz", b)
    assert "problems: none" in describe(tmp_path / "noisy.nii.gz")


def test_image_file_problems_match_what_reading_refuses(tmp_path):
    nan = _img(0).astype(np.float32)
    nan[3, 3, 3] = np.nan
    _nifti(tmp_path / "nan.nii.gz", nan)
    text = describe(tmp_path / "nan.nii.gz")
    assert "1 NaN/infinite voxels" in text
    expected = (
        f"    - {tmp_path / 'nan.nii.gz'}: holds 1 NaN or infinite voxels; "
        "fix the file or replace them (e.g. with 0)"
    )
    assert _problems(text) == [expected]
    huge = _img(1).astype(np.float32)
    huge[:, :, :2] = 3e38
    _nifti(tmp_path / "huge.nii.gz", huge)
    (problem,) = _problems(describe(tmp_path / "huge.nii.gz"))
    assert "3e+38" in problem and "limit 1e+10" in problem
    _nifti(tmp_path / "flat.nii.gz", np.full((12, 10, 8), 7, np.int16))
    (problem,) = _problems(describe(tmp_path / "flat.nii.gz"))
    assert "constant (7)" in problem
    big = np.zeros((12, 10, 8), np.int64)
    big[0, 0, 0] = 10**12  # two values 1e12 apart: no bincount of 1e12 bins
    nib.save(nib.Nifti1Image(big, np.eye(4), dtype=np.int64), str(tmp_path / "big.nii.gz"))
    (problem,) = _problems(describe(tmp_path / "big.nii.gz"))
    assert "1e+12" in problem


def test_case_folder_with_a_nan_channel_is_described_and_listed(tmp_path):
    for k, m in enumerate(("flair", "t1", "t1ce", "t2")):
        a = _img(k).astype(np.float32)
        if m == "t1":
            a[0, 0, 0] = np.inf
        _nifti(tmp_path / "c1" / f"c1_{m}.nii.gz", a)
    text = describe(tmp_path / "c1")
    assert "UNREADABLE" not in text and "1 NaN/infinite voxels" in text
    (problem,) = _problems(text)
    assert "c1_t1.nii.gz" in problem and "NaN or infinite" in problem


def test_case_folder_problems_that_reading_would_trip_over(tmp_path, brats_root):
    import os

    case = tmp_path / "c2"
    for k, m in enumerate(("flair", "t1", "t1ce", "t2")):
        _nifti(case / f"c2_{m}.nii.gz", _img(k))
    _nifti(case / "c2_seg.nii.gz", np.zeros((12, 10, 8), np.uint8))
    assert "problems: none" in describe(case)
    _nifti(case / "x_flair.nii.gz", _img(9))  # a second FLAIR: one of the two is picked by name order
    problems = _problems(describe(case))
    assert len(problems) == 1 and "2 files for flair" in problems[0]
    assert "x_flair.nii.gz" in problems[0] and "c2_flair.nii.gz" in problems[0]
    (case / "x_flair.nii.gz").unlink()
    (case / "c2_t2.nii.gz").unlink()
    os.mkfifo(case / "c2_t2.nii.gz")  # listed as the t2 channel, refused without blocking on it (issue 36)
    problems = _problems(describe(case))
    assert any("c2_t2.nii.gz: is not a regular file" in p for p in problems), problems
    (case / "c2_t2.nii.gz").unlink()
    (case / "c2_t2.nii.gz").mkdir()
    # read as the t2 channel, not left out of the case
    assert any(
        "c2_t2.nii.gz: is a folder with no DICOM series; give an image file" in p
        for p in _problems(describe(case))
    )


def test_case_label_values_no_scheme_fits(tmp_path):
    for k, m in enumerate(("flair", "t1", "t1ce", "t2")):
        _nifti(tmp_path / "c3" / f"c3_{m}.nii.gz", _img(k))
    lab = np.zeros((12, 10, 8), np.int16)
    lab[3, 3, 3] = 300
    _nifti(tmp_path / "c3" / "c3_seg.nii.gz", lab)
    (problem,) = _problems(describe(tmp_path / "c3"))
    assert "label values [300] are not among [0, 1, 2, 3, 4]" in problem


def test_label_numbering_is_named(data_root, brats_root, tmp_path):
    text = describe(data_root / "brats2012_mha")
    assert (
        "label numbering: BRATS 2012 (1 edema, 2 core), from the values and shapes; use --labels brats2012"
        in text
    )
    assert "label numbering" not in describe(brats_root / CASE)  # BraTS 2017+: what everything assumes
    seg = nib.load(str(brats_root / CASE / f"{CASE}_seg.nii.gz"))
    a = np.asanyarray(seg.dataobj)
    nnunet = np.zeros_like(a)
    nnunet[a == 2], nnunet[a == 1], nnunet[a == 4] = 1, 2, 3
    (tmp_path / "ds" / CASE).mkdir(parents=True)
    for m in ("flair", "t1", "t1ce", "t2"):
        (tmp_path / "ds" / CASE / f"{CASE}_{m}.nii.gz").symlink_to(brats_root / CASE / f"{CASE}_{m}.nii.gz")
    nib.save(
        nib.Nifti1Image(nnunet, seg.affine, seg.header), str(tmp_path / "ds" / CASE / f"{CASE}_seg.nii.gz")
    )
    text = describe(tmp_path / "ds", progress=False)
    assert "label numbering: nnU-Net's BraTS numbering" in text and "use --labels nnunet-brats" in text


def test_many_distinct_label_grids_are_summarised_not_listed():
    """Issue 36 item 7: a 260-case dataset printed one line per distinct grid (hundreds)."""
    from medseg3d.info import GRIDS_LISTED, grid_summary

    few = [((240, 240, 155), (1.0, 1.0, 1.0), "LPS")] * 3 + [((200, 200, 100), (1.0, 1.0, 1.5), "RAS")]
    assert grid_summary(few) == (
        "3 case(s) (240, 240, 155) at (1, 1, 1) mm LPS; 1 case(s) (200, 200, 100) at (1, 1, 1.5) mm RAS"
    )
    many = [((30 + k, 50, 40 - k % 3), (1.0, 1.0, 1.0 + 0.5 * (k % 2)), "RAS") for k in range(40)]
    many += [((31, 50, 39), (1.0, 1.0, 1.5), "RAS")] * 5
    line = grid_summary(many)
    assert line.startswith(
        "40 distinct grids over 45 cases: sizes 30-69 x 50 x 38-40 voxels, spacing 1 x 1 x 1-1.5 mm"
    )
    assert "orientation RAS; most common (31, 50, 39) at (1, 1, 1.5) mm RAS (6 case(s))" in line
    assert line.count(" at (") == GRIDS_LISTED and "\n" not in line
