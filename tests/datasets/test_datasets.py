"""Dataset layouts, case checks and splits."""

from __future__ import annotations

import json
import random
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg3d.datasets import (
    BRATS_MODALITIES,
    Case,
    check_case,
    dataset_labels,
    detect_layout,
    find_cases,
    fold_ids,
    load_split,
    make_split,
    normalise_modalities,
    save_split,
)
from medseg3d.errors import InputError
from medseg3d.io import Volume, read_volume, write_volume
from medseg3d.labels import BRATS2015, scheme_from_labels

CASE = "Brats18_2013_20_1"


def _one_line(excinfo, *fragments):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert f in msg, (f, msg)


def _nifti(path: Path, array: np.ndarray, affine=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))
    return path


def _rand(shape=(12, 10, 8), seed=0, dtype=np.int16):
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 500, size=shape).astype(dtype)
    a[:2] = 0  # some background
    return a


def _synthetic_brats_case(
    root: Path, case_id: str, modalities=BRATS_MODALITIES, label=True, shape=(12, 10, 8)
):
    folder = root / case_id
    for k, m in enumerate(modalities):
        _nifti(folder / f"{case_id}_{m}.nii.gz", _rand(shape, seed=k))
    if label:
        lab = np.zeros(shape, np.uint8)
        lab[5:8, 4:6, 3:5] = 2
        lab[6, 5, 4] = 4
        _nifti(folder / f"{case_id}_seg.nii.gz", lab)
    return folder


def _link_case(brats_root: Path, dst: Path, case_id: str, modalities=("flair", "t1", "t1ce", "t2", "seg")):
    dst.mkdir(parents=True, exist_ok=True)
    for m in modalities:
        (dst / f"{case_id}_{m}.nii.gz").symlink_to(brats_root / case_id / f"{case_id}_{m}.nii.gz")
    return dst


# ------------------------------------------------------------------------------------------------ BraTS


def test_brats_layout_on_the_shared_folder(brats_root):
    assert detect_layout(brats_root) == "brats"
    cases = find_cases(brats_root)
    folders = sorted(d.name for d in brats_root.iterdir() if d.is_dir())
    assert len(folders) == 27  # the shared development set (../shared/data/README.md)
    ids = [c.case_id for c in cases]
    assert ids == folders  # every case folder found once, in sorted order
    for c in cases:
        assert c.modalities == ("flair", "t1", "t1ce", "t2")
        for m, p in c.channels.items():
            assert p.name == f"{c.case_id}_{m}.nii.gz" and p.is_file()
        assert c.label is not None and c.label.name == f"{c.case_id}_seg.nii.gz"
    assert find_cases(brats_root, layout="brats", require_label=True)[0].case_id == ids[0]


def test_load_stacks_channels_in_order(brats_root):
    case = next(c for c in find_cases(brats_root) if c.case_id == CASE)
    image, ref, label = case.select("t2,flair").load()
    assert image.shape == (2, 240, 240, 155) and image.dtype == np.float32
    np.testing.assert_array_equal(image[0], read_volume(case.channels["t2"]).array)
    np.testing.assert_array_equal(image[1], read_volume(case.channels["flair"]).array)
    assert label.shape == (240, 240, 155) and set(np.unique(label)) == {0, 1, 2, 4}
    assert ref.shape == (240, 240, 155)


def test_modality_subset_and_alias(brats_root):
    cases = find_cases(brats_root, modalities="t1c,FLAIR")
    assert all(c.modalities == ("t1ce", "flair") for c in cases)
    assert cases[0].channels["t1ce"].name.endswith("_t1ce.nii.gz")
    assert normalise_modalities(["T1Gd", " t2 "]) == ("t1ce", "t2")
    with pytest.raises(InputError):
        normalise_modalities("flair,t1c,t1ce")  # t1c is t1ce: repeated
    with pytest.raises(InputError):
        normalise_modalities("")


def test_missing_modality_is_a_clear_error(brats_root, tmp_path):
    _link_case(brats_root, tmp_path / CASE, CASE)
    _link_case(brats_root, tmp_path / "Brats18_2013_2_1", "Brats18_2013_2_1", ("flair", "t1", "t1ce", "seg"))
    with pytest.raises(InputError) as e:
        find_cases(tmp_path, modalities="flair,t2")
    _one_line(e, "Brats18_2013_2_1", "t2", "missing")
    # without a subset, every case still gets all four channels; the missing one is reported, not dropped
    cases = find_cases(tmp_path)
    incomplete = next(c for c in cases if c.case_id == "Brats18_2013_2_1")
    assert incomplete.modalities == ("flair", "t1", "t1ce", "t2")
    assert incomplete.missing() == ["t2"]
    problems = check_case(incomplete)
    assert len(problems) == 1 and "t2" in problems[0] and "missing" in problems[0]
    with pytest.raises(InputError) as e:
        incomplete.load()
    _one_line(e, "Brats18_2013_2_1", "t2", "missing")
    # a subset the case has works
    assert find_cases(tmp_path, modalities="flair")[0].modalities == ("flair",)


def test_a_sequence_no_case_has_is_missing_not_a_smaller_dataset(tmp_path):
    """Issue 36 (fuzz, missing-02): a one-case dataset without its FLAIR file trained a three-channel model
    with exit 0, the dataset's channels being those its cases had."""
    one = tmp_path / "one"
    _synthetic_brats_case(one, "c1", ("t1", "t1ce", "t2"))
    (case,) = find_cases(one)
    assert case.modalities == BRATS_MODALITIES and case.missing() == ["flair"]
    assert any("flair" in p and "missing" in p for p in check_case(case))  # info lists it
    with pytest.raises(InputError) as e:
        find_cases(one, complete=True)  # what training and the cache ask for
    _one_line(e, "case c1 has no flair file", "c1_flair.nii.gz", "--modalities t1,t1ce,t2")
    (chosen,) = find_cases(one, modalities="t1,t1ce,t2", complete=True)
    assert chosen.modalities == ("t1", "t1ce", "t2")
    assert "no case has a flair file" in chosen.meta["note"] and "--modalities" in chosen.meta["note"]
    for cid in ("d1", "d2"):
        _synthetic_brats_case(tmp_path / "no_t2", cid, ("flair", "t1", "t1ce"))
    with pytest.raises(InputError) as e:
        find_cases(tmp_path / "no_t2", complete=True)
    _one_line(e, "none of the 2 cases has a t2 file", "--modalities flair,t1,t1ce")
    # a case lacking what another case has: that case's file is missing, said when it is read (as before)
    _synthetic_brats_case(one, "c2", ("flair", "t1", "t1ce"))
    assert [c.missing() for c in find_cases(one, complete=True)] == [["flair"], ["t2"]]


def test_a_background_other_than_zero_is_moved_to_zero(tmp_path):
    """Fuzz (negative_values): a FLAIR whose background was -5000 made the whole volume 'brain' for the
    normalisation, and predict's whole tumour overlapped the unbroken case's by Dice 0.51 (-30000: 0.23), with
    exit 0; it now agrees with it voxel for voxel."""
    from medseg3d.datasets.case import background_at_zero

    image = _rand((20, 20, 20))  # background: the first two slices, 10% of the volume
    folder = _synthetic_brats_case(tmp_path, "c1", shape=(20, 20, 20))
    _nifti(folder / "c1_flair.nii.gz", np.where(image != 0, image - 500, -5000).astype(np.int16))
    (case,) = find_cases(tmp_path)
    loaded, _, _ = case.load()
    flair = loaded[0]
    assert flair.min() == 0 and np.array_equal(flair == 0, image == 0)
    tissue = image[image != 0]
    np.testing.assert_array_equal(flair[image != 0], tissue - tissue.min() + 1)  # the offset undone, no more
    # left alone: a background at 0 (with negative interpolation values beside it), and an image without a
    # fill at its minimum (a crop inside the head, values all different)
    with_zero = Volume(np.where(image != 0, image - 600, 0).astype(np.int16), np.eye(4))
    assert background_at_zero(with_zero) is with_zero
    smooth = Volume(np.random.default_rng(1).normal(-3.0, 1.0, (20, 20, 20)).astype(np.float32), np.eye(4))
    assert background_at_zero(smooth) is smooth


def test_a_ct_channel_keeps_its_hounsfield_units(tmp_path):
    """CT is on an absolute scale: its air background (-1000 HU or the scanner's -1024 fill) is not moved to 0
    as an MR image's fill is."""
    images = tmp_path / "imagesTr"
    images.mkdir()
    (tmp_path / "dataset.json").write_text(
        json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0, "organ": 1}})
    )
    hu = np.full((20, 20, 20), -1024, dtype=np.int16)
    hu[4:16, 4:16, 4:16] = np.random.default_rng(0).integers(-200, 300, (12, 12, 12))
    _nifti(images / "ct_001_0000.nii.gz", hu)
    (case,) = find_cases(tmp_path)
    assert list(case.channels) == ["ct"]
    image, _, _ = case.load(with_label=False)
    np.testing.assert_array_equal(image[0], hu)


def test_values_that_wrapped_around_a_small_type_are_refused(brats_root, tmp_path):
    """Fuzz (wrong_dtype-04): a T1 cast to uint8 wrapped around modulo 256, and predict's whole tumour
    overlapped the right one by Dice 0.53, with exit 0."""
    from medseg3d.datasets.case import wrapped_share

    t1 = read_volume(brats_root / CASE / f"{CASE}_t1.nii.gz")
    box = (slice(60, 180), slice(60, 180), slice(40, 110))
    wrapped = (t1.array[box].astype(np.int64) % 256).astype(np.uint8)
    scaled = np.round(t1.array[box] / t1.array.max() * 255).astype(np.uint8)  # an 8-bit export done right
    assert wrapped_share(wrapped) > 0.02 and wrapped_share(scaled) < 0.001
    assert wrapped_share(t1.array) == 0.0  # int16, 0-~700: no pair can differ by 32768
    assert wrapped_share(wrapped.astype(np.float32)) == 0.0  # floats do not wrap
    folder = _synthetic_brats_case(tmp_path, "c1", shape=wrapped.shape)
    _nifti(folder / "c1_t1.nii.gz", wrapped)
    (case,) = find_cases(tmp_path)
    with pytest.raises(InputError) as e:
        case.load()
    _one_line(e, "case c1: channel t1", "wrapped around", "uint8", "wider type")


def test_single_case_folder(brats_root):
    cases = find_cases(brats_root / CASE)
    assert [c.case_id for c in cases] == [CASE]
    assert cases[0].modalities == BRATS_MODALITIES


def test_nested_hgg_lgg_brats_folder(brats_root, tmp_path):
    (tmp_path / "HGG").mkdir()
    (tmp_path / "LGG").mkdir()
    for cid in ("Brats18_2013_20_1", "Brats18_2013_2_1"):
        (tmp_path / "HGG" / cid).symlink_to(brats_root / cid, target_is_directory=True)
    (tmp_path / "LGG" / "Brats18_TCIA10_628_1").symlink_to(
        brats_root / "Brats18_TCIA10_628_1", target_is_directory=True
    )
    # BraTS ships this beside HGG/LGG
    (tmp_path / "survival_data.csv").write_text("id,age\n", encoding="utf-8")
    assert detect_layout(tmp_path) == "brats"
    cases = find_cases(tmp_path)
    assert {c.case_id: c.meta.get("grade") for c in cases} == {
        "Brats18_2013_20_1": "HGG",
        "Brats18_2013_2_1": "HGG",
        "Brats18_TCIA10_628_1": "LGG",
    }
    assert all(c.modalities == BRATS_MODALITIES and c.label is not None for c in cases)


def test_duplicate_case_ids_are_refused(brats_root, tmp_path):
    for grade in ("HGG", "LGG"):
        (tmp_path / grade).mkdir()
        (tmp_path / grade / CASE).symlink_to(brats_root / CASE, target_is_directory=True)
    with pytest.raises(InputError) as e:
        find_cases(tmp_path)
    _one_line(e, CASE, "twice")


def test_brats_2023_names(tmp_path):
    folder = tmp_path / "BraTS-GLI-00000-000"
    for k, m in enumerate(("t2f", "t1n", "t1c", "t2w")):
        _nifti(folder / f"BraTS-GLI-00000-000-{m}.nii.gz", _rand(seed=k))
    _nifti(folder / "BraTS-GLI-00000-000-seg.nii.gz", np.zeros((12, 10, 8), np.uint8))
    (case,) = find_cases(tmp_path)
    assert case.modalities == BRATS_MODALITIES
    assert case.channels["flair"].name.endswith("-t2f.nii.gz")
    assert case.channels["t1ce"].name.endswith("-t1c.nii.gz")
    assert case.label.name.endswith("-seg.nii.gz")


# ------------------------------------------------------------------------------------------ BRATS .mha


def _mha_tree_2015(brats_root: Path, data_root: Path, root: Path):
    """A BRATS 2015 style tree:
    HGG/<patient>/VSD.Brain.XX.O.MR_<mod>.<id>/VSD.Brain.XX.O.MR_<mod>.<id>.mha."""
    box = (slice(100, 132), slice(90, 118), slice(60, 84))  # a small block through the tumour
    names = {"flair": "MR_Flair", "t1": "MR_T1", "t1ce": "MR_T1c", "t2": "MR_T2"}
    written = {}
    for grade, patient, first_id in (
        ("HGG", "brats_2013_pat0020_1", 54500),
        ("LGG", "brats_tcia_pat101_1", 54600),
    ):
        patient_dir = root / grade / patient
        for k, (mod, mr) in enumerate(names.items()):
            vol = read_volume(brats_root / CASE / f"{CASE}_{mod}.nii.gz")
            small = Volume(np.ascontiguousarray(vol.array[box]), vol.affine)
            name = f"VSD.Brain.XX.O.{mr}.{first_id + k}"
            (patient_dir / name).mkdir(parents=True)
            write_volume(small, patient_dir / name / f"{name}.mha")
            written[(patient, mod)] = small.array
        lab = read_volume(data_root / "brats2015_labels" / f"{CASE}_seg_brats2015.nii.gz")
        small = Volume(np.ascontiguousarray(lab.array[box].astype(np.int16)), lab.affine)
        name = f"VSD.Brain_3more.XX.O.OT.{first_id + 9}"
        (patient_dir / name).mkdir()
        write_volume(small, patient_dir / name / f"{name}.mha")
        written[(patient, "label")] = small.array
    return written


def test_brats2015_nested_mha_layout(brats_root, data_root, tmp_path):
    written = _mha_tree_2015(brats_root, data_root, tmp_path)
    assert detect_layout(tmp_path) == "brats-mha"
    cases = find_cases(tmp_path)
    assert [c.case_id for c in cases] == ["brats_2013_pat0020_1", "brats_tcia_pat101_1"]
    assert [c.meta["grade"] for c in cases] == ["HGG", "LGG"]
    case = cases[0]
    assert case.modalities == ("flair", "t1", "t1ce", "t2")
    assert "MR_T1c" in case.channels["t1ce"].name and "MR_Flair" in case.channels["flair"].name
    assert ".OT." in case.label.name
    image, _, label = case.load()
    for k, m in enumerate(case.modalities):
        np.testing.assert_array_equal(image[k], written[(case.case_id, m)])
    np.testing.assert_array_equal(label, written[(case.case_id, "label")])
    assert set(np.unique(BRATS2015.to_classes(label))) == {0, 1, 2, 3, 4}  # the five classes survive
    assert check_case(case) == []
    # the layout can be named, and one grade folder or one patient folder is a dataset too
    assert len(find_cases(tmp_path, layout="brats-mha")) == 2
    assert [c.case_id for c in find_cases(tmp_path / "LGG")] == ["brats_tcia_pat101_1"]
    assert [c.case_id for c in find_cases(tmp_path / "HGG" / "brats_2013_pat0020_1")] == [
        "brats_2013_pat0020_1"
    ]


def test_brats2015_missing_modality_reported(brats_root, data_root, tmp_path):
    _mha_tree_2015(brats_root, data_root, tmp_path)
    t2_dir = next((tmp_path / "LGG" / "brats_tcia_pat101_1").glob("*MR_T2*"))
    for f in t2_dir.iterdir():
        f.unlink()
    t2_dir.rmdir()
    cases = find_cases(tmp_path)
    lgg = next(c for c in cases if c.case_id == "brats_tcia_pat101_1")
    assert lgg.missing() == ["t2"]
    assert any("t2" in p and "missing" in p for p in check_case(lgg))
    with pytest.raises(InputError) as e:
        find_cases(tmp_path, modalities="flair,t2")
    _one_line(e, "brats_tcia_pat101_1", "t2")


def test_flat_2012_mha_layout(data_root):
    root = data_root / "brats2012_mha"
    assert detect_layout(root) == "brats-mha"
    (case,) = find_cases(root)
    assert case.case_id == "BRATS_HG0015"
    assert [p.name for p in case.channels.values()] == [
        "BRATS_HG0015_FLAIR.mha",
        "BRATS_HG0015_T1.mha",
        "BRATS_HG0015_T1C.mha",
        "BRATS_HG0015_T2.mha",
    ]
    assert case.label.name == "BRATS_HG0015_truth.mha"
    assert find_cases(root, modalities="t1c")[0].channels["t1ce"].name == "BRATS_HG0015_T1C.mha"


# ------------------------------------------------------------------------------------------ nnU-Net / MSD


def _nnunet_tree(root: Path, n=3, missing_channel=False):
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    (root / "imagesTs").mkdir()
    info = {
        "channel_names": {"0": "FLAIR", "1": "T1w"},
        "labels": {"background": 0, "edema": 1, "tumour": 2},
        "numTraining": n,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(info), encoding="utf-8")
    for i in range(n):
        cid = f"hand_{i:03d}"
        for ch in range(2):
            if missing_channel and i == 1 and ch == 1:
                continue
            _nifti(root / "imagesTr" / f"{cid}_{ch:04d}.nii.gz", _rand(seed=10 * i + ch))
        _nifti(root / "labelsTr" / f"{cid}.nii.gz", (np.arange(960).reshape(12, 10, 8) % 3).astype(np.uint8))
    _nifti(root / "imagesTs" / "hand_100_0000.nii.gz", _rand(seed=5))
    _nifti(root / "imagesTs" / "hand_100_0001.nii.gz", _rand(seed=6))
    (root / "imagesTr" / "._hand_000_0000.nii.gz").write_bytes(b"macOS resource fork")


def test_nnunet_layout(tmp_path):
    _nnunet_tree(tmp_path)
    assert detect_layout(tmp_path) == "nnunet"
    cases = find_cases(tmp_path)
    assert [c.case_id for c in cases] == ["hand_000", "hand_001", "hand_002"]
    c = cases[1]
    assert c.modalities == ("flair", "t1")
    assert c.channels["t1"].name == "hand_001_0001.nii.gz"
    assert c.label.name == "hand_001.nii.gz"
    image, _, label = c.load()
    assert image.shape == (2, 12, 10, 8)
    np.testing.assert_array_equal(image[1], _rand(seed=11))
    test_cases = find_cases(tmp_path, split="Ts")
    assert [t.case_id for t in test_cases] == ["hand_100"] and test_cases[0].label is None
    with pytest.raises(InputError):
        find_cases(tmp_path, split="Ts", require_label=True)
    scheme = scheme_from_labels(dataset_labels(tmp_path))
    assert scheme.values == (0, 1, 2) and scheme.class_names == ("background", "edema", "tumour")
    np.testing.assert_array_equal(scheme.to_classes(label), label)


def test_nnunet_missing_channel_file_reported(tmp_path):
    _nnunet_tree(tmp_path, missing_channel=True)
    case = find_cases(tmp_path)[1]
    problems = check_case(case)
    assert len(problems) == 1 and "t1" in problems[0] and "hand_001_0001" in problems[0]


def test_msd_four_dimensional_images(tmp_path):
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    info = {
        "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
        "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
    }
    (tmp_path / "dataset.json").write_text(json.dumps(info), encoding="utf-8")
    arr = np.stack([_rand(seed=k) for k in range(4)], axis=-1)
    _nifti(tmp_path / "imagesTr" / "BRATS_001.nii.gz", arr)
    _nifti(tmp_path / "labelsTr" / "BRATS_001.nii.gz", np.zeros((12, 10, 8), np.uint8))
    (case,) = find_cases(tmp_path)
    assert case.modalities == ("flair", "t1", "t1ce", "t2")  # MSD names mapped to the BraTS ones
    image, _, _ = case.load()
    np.testing.assert_array_equal(image, np.moveaxis(arr, -1, 0))
    (sub,) = find_cases(tmp_path, modalities="t1gd,flair")
    image, _, _ = sub.load()
    np.testing.assert_array_equal(image, np.stack([arr[..., 2], arr[..., 0]]))
    assert check_case(case) == []


def test_nnunet_bad_dataset_json(tmp_path):
    (tmp_path / "dataset.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError) as e:
        find_cases(tmp_path)
    _one_line(e, "dataset.json", "JSON")


# ---------------------------------------------------------------------------------------------------- CSV


def test_csv_layout(brats_root, tmp_path):
    (tmp_path / "imgs").mkdir()
    rel = tmp_path / "imgs" / "a_flair.nii.gz"
    rel.symlink_to(brats_root / CASE / f"{CASE}_flair.nii.gz")
    rows = [
        "\ufeffcase,FLAIR,T1c,label",  # a spreadsheet's byte-order mark
        (
            f"a,imgs/a_flair.nii.gz,{brats_root / CASE / (CASE + '_t1ce.nii.gz')},"
            f"{brats_root / CASE / (CASE + '_seg.nii.gz')}"
        ),
        (
            f"b,{brats_root / 'Brats18_2013_2_1' / 'Brats18_2013_2_1_flair.nii.gz'},"
            f"{brats_root / 'Brats18_2013_2_1' / 'Brats18_2013_2_1_t1ce.nii.gz'},"
        ),
        "",
    ]
    (tmp_path / "cases.csv").write_text("\n".join(rows), encoding="utf-8")
    assert detect_layout(tmp_path / "cases.csv") == "csv"
    cases = find_cases(tmp_path / "cases.csv")
    assert [c.case_id for c in cases] == ["a", "b"]
    assert cases[0].modalities == ("flair", "t1ce")
    assert cases[0].channels["flair"] == rel
    assert cases[0].label.name == f"{CASE}_seg.nii.gz"
    assert cases[1].label is None
    with pytest.raises(InputError):
        find_cases(tmp_path / "cases.csv", require_label=True)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        ("id,flair\nx,a.nii.gz\n", "'case'"),
        ("case,flair\n", "no cases"),
        ("case,label\nx,a.nii.gz\n", "no channel"),
        ("case,flair,t1\nx,a.nii.gz,\n", "t1"),
        ("case,flair\nx,a.nii.gz,extra\n", "line 2"),
    ],
)
def test_csv_errors(tmp_path, text, fragment):
    (tmp_path / "c.csv").write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as e:
        find_cases(tmp_path / "c.csv")
    _one_line(e, fragment)


# --------------------------------------------------------------------------------------------- problems


def test_check_case_reports_every_problem(tmp_path):
    folder = tmp_path / "bad"
    shape = (12, 10, 8)
    _nifti(folder / "bad_flair.nii.gz", _rand(shape))
    _nifti(folder / "bad_t1.nii.gz", _rand((12, 10, 9)))  # other shape
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    _nifti(folder / "bad_t1ce.nii.gz", _rand(shape), shifted)  # same shape, other affine
    nan = _rand(shape).astype(np.float32)
    nan[3, 3, 3] = np.nan
    _nifti(folder / "bad_t2.nii.gz", nan)
    _nifti(folder / "bad_seg.nii.gz", np.zeros((12, 10, 7), np.uint8))  # label off the grid
    (case,) = find_cases(folder)
    problems = check_case(case)
    text = "\n".join(problems)
    assert len(problems) == 4, text
    assert "t1 has grid (12, 10, 9)" in problems[0]
    assert "t1ce" in problems[1] and "origin" in problems[1]
    assert "t2" in problems[2] and "NaN" in problems[2]
    assert "label grid" in problems[3]
    assert all("\n" not in p and p.startswith("case bad:") for p in problems)
    with pytest.raises(InputError) as e:
        case.load()
    _one_line(e, "t1")


def test_constant_and_unreadable_images(tmp_path):
    folder = tmp_path / "c1"
    _nifti(folder / "c1_flair.nii.gz", _rand())
    _nifti(folder / "c1_t1.nii.gz", np.full((12, 10, 8), 7, np.int16))
    (folder / "c1_t2.nii.gz").write_bytes(b"\x1f\x8b broken")
    _nifti(folder / "c1_seg.nii.gz", np.full((12, 10, 8), 0.5, np.float32))
    (case,) = find_cases(folder)
    problems = check_case(case)
    assert len(problems) == 3, problems
    assert "t1" in problems[0] and "constant" in problems[0]
    assert "t2" in problems[1] and "cannot read" in problems[1]
    assert "non-integer" in problems[2]
    with pytest.raises(InputError) as e:
        case.select("flair,t1").load()
    _one_line(e, "constant")


def test_empty_folder_and_file_for_folder(tmp_path, brats_root):
    with pytest.raises(InputError) as e:
        find_cases(tmp_path)
    _one_line(e, "no cases found")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "readme.txt").write_text("x", encoding="utf-8")
    with pytest.raises(InputError):
        find_cases(tmp_path)
    image = brats_root / CASE / f"{CASE}_seg.nii.gz"
    with pytest.raises(InputError) as e:
        find_cases(image)
    _one_line(e, "is a file")
    with pytest.raises(InputError) as e:
        find_cases(image, layout="brats")
    _one_line(e, "is a file")
    with pytest.raises(InputError) as e:
        find_cases(tmp_path, layout="csv")
    _one_line(e, "is a folder")
    with pytest.raises(InputError) as e:
        find_cases(tmp_path / "nowhere")
    _one_line(e, "no such")
    with pytest.raises(InputError) as e:
        find_cases(tmp_path, layout="decathlon")
    _one_line(e, "unknown dataset layout")


def test_case_without_channels_cannot_load():
    with pytest.raises(InputError):
        Case("x", {}).load()


# ------------------------------------------------------------------------------------------------ splits

IDS = [f"case_{i:03d}" for i in range(20)]


def test_kfold_covers_every_case_once():
    split = make_split(IDS, folds=5, seed=3)
    assert split["kind"] == "kfold" and len(split["folds"]) == 5
    seen = [c for f in split["folds"] for c in f["val"]]
    assert sorted(seen) == IDS  # every case in exactly one validation fold
    for k, f in enumerate(split["folds"]):
        assert len(f["val"]) == 4
        assert set(f["train"]).isdisjoint(f["val"])
        assert sorted(f["train"] + f["val"]) == IDS
        assert fold_ids(split, k) == (f["train"], f["val"])
    with pytest.raises(InputError):
        fold_ids(split, 5)
    with pytest.raises(InputError):
        fold_ids(split, None)


def test_kfold_uneven_sizes():
    split = make_split(IDS[:7], folds=3)
    assert sorted(len(f["val"]) for f in split["folds"]) == [2, 2, 3]


def test_split_is_seeded_deterministic_and_order_independent():
    shuffled = IDS[:]
    random.Random(1).shuffle(shuffled)
    for kw in ({"folds": 4}, {"counts": (16, 2, 2)}, {"fractions": (0.6, 0.2, 0.2)}):
        a = make_split(IDS, seed=7, **kw)
        assert make_split(IDS, seed=7, **kw) == a
        assert make_split(shuffled, seed=7, **kw) == a
        assert make_split(IDS, seed=8, **kw) != a
    assert make_split(IDS, folds=4) == make_split(IDS, folds=4, seed=0)


def test_holdout_by_counts_the_papers_pattern():
    ids = [f"p{i:03d}" for i in range(274)]
    split = make_split(ids, counts=(220, 27, 27), seed=0)
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (220, 27, 27)
    assert sorted(split["train"] + split["val"] + split["test"]) == ids
    # the same pattern scaled to the 20 shared cases
    split = make_split(IDS, counts=(16, 2, 2))
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (16, 2, 2)
    assert set(split["train"]) | set(split["val"]) | set(split["test"]) == set(IDS)
    assert fold_ids(split, None) == (split["train"], split["val"])


def test_holdout_by_fractions():
    split = make_split(IDS, fractions=(0.7, 0.15, 0.15))
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (14, 3, 3)
    split = make_split(IDS)  # default 80/10/10
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (16, 2, 2)
    split = make_split(IDS[:3], fractions=(0.0, 0.5, 0.5))  # rounding 1.5 + 1.5 must not overshoot 3
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (0, 2, 1)


@pytest.mark.parametrize(
    "kw",
    [
        {"folds": 1},
        {"folds": 21},
        {"counts": (10, 5, 4)},
        {"counts": (22, -1, -1)},
        {"fractions": (0.5, 0.5, 0.5)},
        {"fractions": (1.2, -0.1, -0.1)},
    ],
)
def test_split_errors(kw):
    with pytest.raises(InputError):
        make_split(IDS, **kw)


def test_repeated_ids_refused():
    with pytest.raises(InputError):
        make_split(["a", "b", "a"], folds=2)


def test_save_and_load_split(tmp_path):
    for split in (make_split(IDS, folds=5, seed=2), make_split(IDS, counts=(16, 2, 2), seed=2)):
        path = save_split(split, tmp_path / "nested" / "split.json")
        assert load_split(path) == split
        assert [p.name for p in path.parent.iterdir()] == ["split.json"]
    with pytest.raises(InputError) as e:
        load_split(tmp_path / "none.json")
    _one_line(e, "not found")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(InputError):
        load_split(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(InputError):
        load_split(tmp_path / "list.json")
    (tmp_path / "nokey.json").write_text('{"kind": "kfold"}', encoding="utf-8")
    with pytest.raises(InputError):
        load_split(tmp_path / "nokey.json")
    with pytest.raises(InputError):
        load_split(tmp_path)


def test_numbered_files_without_dataset_json_are_taken_in_the_models_channel_order(tmp_path):
    """nnU-Net files ``<case>_0000`` with no dataset.json: for a model of another anatomy, channel k is the
    model's channel k (nnU-Net's convention), said in a note; for BraTS sequences position alone decides
    nothing."""
    images = tmp_path / "imagesTs"
    images.mkdir()
    for case_id in ("hippo_001", "hippo_002"):
        _nifti(images / f"{case_id}_0000.nii.gz", _rand())
    cases = find_cases(images)
    assert [list(c.channels) for c in cases] == [["ch0"], ["ch0"]]
    chosen = cases[0].select(("mri",))
    assert chosen.channels == {"mri": images / "hippo_001_0000.nii.gz"}
    assert "_0000 taken as mri" in chosen.meta["note"] and "dataset.json" in chosen.meta["note"]
    assert chosen.load()[0].shape[0] == 1
    with pytest.raises(InputError) as excinfo:
        cases[0].select(("flair",))
    _one_line(excinfo, "modality flair is missing", "found ch0")
    with pytest.raises(InputError):  # two channels asked, one file: no guess
        cases[0].select(("mri", "ct"))
