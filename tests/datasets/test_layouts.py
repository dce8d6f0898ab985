"""Every input layout a user brings, from a real shared case converted in the test: found, channels named and
checked, ambiguity refused (issue #21 layouts, issue #20 item 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from layouts import (
    MODALITIES,
    NNUNET_ORDER,
    brats_names,
    crop_case,
    write_case_folder,
    write_dicom_case,
    write_nnunet_case,
    write_nnunet_dataset,
)

from medseg3d.datasets import (
    FLAGS,
    brats_label_map,
    channel_order_warning,
    check_case,
    dataset_labels,
    detect_layout,
    find_cases,
    identify_name,
    resolve_case_channels,
)
from medseg3d.errors import InputError
from medseg3d.info import describe

CASE = "Brats18_2013_20_1"
OTHER = "Brats18_2013_2_1"


@pytest.fixture(scope="module")
def vols(brats_root):
    return crop_case(brats_root, CASE)


@pytest.fixture(scope="module")
def other_vols(brats_root):
    return crop_case(brats_root, OTHER)


def _one_line(excinfo, *fragments):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert f in msg, (f, msg)


def _assert_channels_are(case, vols, modalities=MODALITIES):
    image, ref, label = case.load()
    assert case.modalities == tuple(modalities)
    for k, m in enumerate(modalities):
        np.testing.assert_array_equal(image[k], vols[m].array)
    np.testing.assert_allclose(ref.affine, vols["flair"].affine, atol=1e-4)
    return label


# ------------------------------------------------------------------------------------ names -> modality


@pytest.mark.parametrize(
    "name, what, prefix",
    [
        ("Brats18_2013_2_1_flair.nii.gz", "flair", "Brats18_2013_2_1"),
        ("Brats18_2013_2_1_t1.nii.gz", "t1", "Brats18_2013_2_1"),
        ("Brats18_2013_2_1_t1ce.nii.gz", "t1ce", "Brats18_2013_2_1"),  # t1ce, not t1
        ("Brats18_2013_2_1_t2.nii.gz", "t2", "Brats18_2013_2_1"),
        ("Brats18_2013_2_1_seg.nii.gz", "label", "Brats18_2013_2_1"),
        ("BraTS-GLI-00001-000-t1n.nii.gz", "t1", "BraTS-GLI-00001-000"),
        ("BraTS-GLI-00001-000-t1c.nii.gz", "t1ce", "BraTS-GLI-00001-000"),
        ("BraTS-GLI-00001-000-t2w.nii.gz", "t2", "BraTS-GLI-00001-000"),
        ("BraTS-GLI-00001-000-t2f.nii.gz", "flair", "BraTS-GLI-00001-000"),  # t2f, not t2
        ("BraTS-GLI-00001-000-seg.nii.gz", "label", "BraTS-GLI-00001-000"),
        ("BRATS_HG0015_T1C.mha", "t1ce", "BRATS_HG0015"),
        ("BRATS_HG0015_truth.mha", "label", "BRATS_HG0015"),
        ("flair.nii.gz", "flair", ""),
        ("p1_fla.nii", "flair", "p1"),
        ("t2_flair.nii.gz", "flair", ""),
        ("t1w.nii.gz", "t1", ""),
        ("t1_native.nrrd", "t1", ""),
        ("t1gd.nii.gz", "t1ce", ""),
        ("t1_post.mha", "t1ce", ""),
        ("post.nii.gz", "t1ce", ""),
        ("t1+c.nii.gz", "t1ce", ""),
        ("t1_contrast.nii.gz", "t1ce", ""),
        ("post_gd.nii.gz", "t1ce", ""),
        ("t2w.nii", "t2", ""),
        ("flair_brain.nii.gz", "flair", "flair_brain"),  # a modality anywhere, when it is the only one
        ("brainmask.nii.gz", "ignore", ""),
        ("notes.nii.gz", None, "notes"),
        ("CASE_0000.nii.gz", None, "CASE_0000"),  # nnU-Net numbers say nothing without dataset.json
        ("no_t2_t1.nii.gz", "t1", "no_t2"),  # the end names the modality, whatever the case id holds
        ("t1_t2.nii.gz", "t2", "t1"),
    ],
)
def test_modality_from_file_name(name, what, prefix):
    assert identify_name(name) == (what, prefix)


@pytest.mark.parametrize(
    "text, what",
    [
        ("AX T1 POST GD", "t1ce"),
        ("Ax T1 pre", "t1"),
        ("Sag T2 FLAIR", "flair"),
        ("AX T2 FSE", "t2"),
        ("MPRAGE", "t1"),
        ("T1+C", "t1ce"),
        ("AX_FLAIR_3", "flair"),
        ("t1ce", "t1ce"),
        ("T1 FLAIR", None),  # a T1-weighted FLAIR: neither BraTS FLAIR nor plain T1, the user must say
        ("DWI b1000", None),
        ("T2 post", None),
    ],
)
def test_modality_from_series_description(text, what):
    assert identify_name(text, descriptive=True)[0] == what


# ---------------------------------------------------------------------------------- case folder layouts


def test_raw_clinical_folder_is_one_case(data_root):
    raw = data_root / "raw_clinical" / "TCGA-FG-6692" / "raw"
    (case,) = find_cases(raw)
    assert case.modalities == MODALITIES
    assert {m: p.name for m, p in case.channels.items()} == {m: f"{m}.nii.gz" for m in MODALITIES}
    assert case.label is None and "ambiguous" not in case.meta
    case, lines = resolve_case_channels([raw], MODALITIES)
    assert case.case_id == "TCGA-FG-6692"  # "raw" says nothing; its files carry no prefix either
    assert lines == [f"{m} <- {m}.nii.gz (file name)" for m in MODALITIES]


def test_nrrd_case_folder(vols, tmp_path):
    folder = write_case_folder(vols, tmp_path / CASE, brats_names(CASE), ".nrrd")
    assert detect_layout(folder) == "brats"
    (case,) = find_cases(folder)
    assert case.case_id == CASE and case.label.name == f"{CASE}_seg.nrrd"
    label = _assert_channels_are(case, vols)
    np.testing.assert_array_equal(label, vols["seg"].array)
    assert check_case(case) == []
    # a dataset of such folders, too
    write_case_folder(vols, tmp_path / "ds" / CASE, brats_names(CASE), ".nrrd")
    write_case_folder(vols, tmp_path / "ds" / "second", brats_names("second"), ".nrrd")
    assert [c.case_id for c in find_cases(tmp_path / "ds")] == [CASE, "second"]


def test_mha_case_folder_keeps_its_t1ce(vols, tmp_path):
    folder = write_case_folder(vols, tmp_path / CASE, brats_names(CASE), ".mha")
    assert detect_layout(folder) == "brats-mha"
    (case,) = find_cases(folder)
    assert case.case_id == CASE
    assert case.channels["t1ce"].name == f"{CASE}_t1ce.mha"  # was dropped: 3 channels
    _assert_channels_are(case, vols)
    assert check_case(case) == []
    text = describe(folder)
    assert f"t1ce: {folder / (CASE + '_t1ce.mha')} (taken as t1ce from its file name)" in text
    assert "problems: none" in text


def test_dicom_series_case_folder(vols, tmp_path):
    # modality from the folder name (AX_FLAIR, t2) or, for neutral folder names, the SeriesDescription
    folder = write_dicom_case(
        vols,
        tmp_path / CASE,
        {"flair": "AX_FLAIR", "t1": "series_2|AX T1 PRE", "t1ce": "series_3|AX T1 POST GD", "t2": "t2"},
    )
    (case,) = find_cases(folder)
    assert case.case_id == CASE
    assert {m: p.name for m, p in case.channels.items()} == {
        "flair": "AX_FLAIR",
        "t1": "series_2",
        "t1ce": "series_3",
        "t2": "t2",
    }
    assert case.meta["sources"]["t1ce"] == "series description 'AX T1 POST GD'"
    assert case.meta["sources"]["flair"] == "folder name"
    _assert_channels_are(case, vols)
    text = describe(folder)
    assert "t1ce" in text and "series description 'AX T1 POST GD'" in text and "problems: none" in text
    # the series folders are inputs like files for prediction
    series = [folder / "t2", folder / "series_3", folder / "AX_FLAIR", folder / "series_2"]
    case, lines = resolve_case_channels(series, MODALITIES)
    assert [p.name for p in case.channels.values()] == ["AX_FLAIR", "series_2", "series_3", "t2"]
    assert "reordered" in lines[0]


# ------------------------------------------------------------------------------------------------ nnU-Net


def test_nnunet_dataset137(vols, other_vols, tmp_path):
    root = write_nnunet_dataset(
        {CASE: vols, OTHER: other_vols}, tmp_path / "Dataset137_BraTS2021", test_cases=[OTHER]
    )
    assert detect_layout(root) == "nnunet"
    cases = find_cases(root)
    assert [c.case_id for c in cases] == [CASE, OTHER]
    case = cases[0]
    # dataset.json says 0 T1, 1 T1ce, 2 T2, 3 Flair: FLAIR is the _0003 file
    assert {m: p.name for m, p in case.channels.items()} == {
        m: f"{CASE}_{NNUNET_ORDER.index(m):04d}.nii.gz" for m in MODALITIES
    }
    label = _assert_channels_are(case, vols)
    # nnU-Net's 1 edema, 2 NCR/NET, 3 enhancing are read back as BraTS 2, 1, 4
    np.testing.assert_array_equal(label, vols["seg"].array)
    assert set(np.unique(label)) == {0, 1, 2, 4}
    assert dataset_labels(root) == {"background": 0, "NCR/NET": 1, "edema": 2, "enhancing": 4}
    (test_case,) = find_cases(root, split="Ts")
    assert test_case.case_id == OTHER and test_case.label is None
    _assert_channels_are(test_case, other_vols)
    text = describe(root, progress=False)
    assert "layout: nnunet" in text and "channels: flair, t1, t1ce, t2" in text
    assert "flair <- <case>_0003.nii.gz (dataset.json channel 3 'Flair')" in text
    assert "label values read as BraTS values: 1 -> 2, 2 -> 1, 3 -> 4" in text
    assert "label schemes that fit: brats" in text and "problems: none" in text


def test_nnunet_images_folder_without_dataset_json(vols, tmp_path):
    images = tmp_path / "imagesTs"
    write_nnunet_case(vols, images, "BRATS_001")
    assert detect_layout(images) == "nnunet"
    (case,) = find_cases(images)
    _assert_channels_are(case, vols)
    assert "nnU-Net's BraTS order" in case.meta["note"] and "\n" not in case.meta["note"]
    assert "note: " in describe(images) and "nnU-Net's BraTS order" in describe(images)
    case, lines = resolve_case_channels([images], MODALITIES)
    assert "nnU-Net's BraTS order" in lines[0]
    assert [p.name for p in case.channels.values()] == [
        f"BRATS_001_{NNUNET_ORDER.index(m):04d}.nii.gz" for m in MODALITIES
    ]
    # the four files listed as given (the WT 0.319 case): reordered by their numbers, and said so
    files = sorted(images.iterdir())
    case, lines = resolve_case_channels(files, MODALITIES)
    _assert_channels_are(case, vols)
    assert case.case_id == "BRATS_001"
    assert any("nnU-Net's BraTS order" in ln for ln in lines) and any("reordered" in ln for ln in lines)


def test_train_says_which_order_it_assumed(vols, tmp_path, capsys):
    from medseg3d.cli import main

    write_nnunet_case(vols, tmp_path / "imagesTs", "BRATS_001", tmp_path / "labelsTs")
    # train stops at once (--out is a file); the assumption is printed first
    (tmp_path / "run").write_text("", encoding="utf-8")
    assert main(["train", str(tmp_path / "imagesTs"), "--out", str(tmp_path / "run"), "--epochs", "1"]) == 2
    out, err = capsys.readouterr()
    assert out.startswith("note: ") and "nnU-Net's BraTS order" in out and out.count("\n") == 1
    assert "is a file" in err
    # a dataset without labels: one line, not a traceback from inside the training loop
    (tmp_path / "labelsTs" / "BRATS_001.nii.gz").unlink()
    assert main(["train", str(tmp_path / "imagesTs"), "--out", str(tmp_path / "run2"), "--epochs", "1"]) == 2
    assert "training needs labels" in capsys.readouterr().err


def test_nnunet_images_folder_reads_the_dataset_json_above(vols, tmp_path):
    order = ("flair", "t1", "t1ce", "t2")  # another dataset's order: must be taken from its dataset.json
    write_nnunet_case(vols, tmp_path / "imagesTs", "c1", order=order)
    (tmp_path / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "FLAIR", "1": "T1w", "2": "T1Gd", "3": "T2w"},
                "labels": {"background": 0},
            }
        ),
        encoding="utf-8",
    )
    (case,) = find_cases(tmp_path / "imagesTs")
    assert "note" not in case.meta
    _assert_channels_are(case, vols)
    case, _ = resolve_case_channels(sorted((tmp_path / "imagesTs").iterdir()), MODALITIES)
    _assert_channels_are(case, vols)


@pytest.mark.parametrize(
    "labels, expected",
    [
        # nnU-Net v2 Dataset137_BraTS2021: regions
        (
            {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]},
            {1: 2, 2: 1, 3: 4},
        ),
        # MSD Task01_BrainTumour: classes, value -> name
        (
            {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
            {1: 2, 2: 1, 3: 4},
        ),
        ({"background": 0, "NCR": 1, "ED": 2, "ET": 3}, {1: 1, 2: 2, 3: 4}),
        ({"background": 0, "NCR/NET": 1, "edema": 2, "enhancing": 4}, None),  # BraTS values already
        # BRATS 2015: 5 classes
        (
            {"background": 0, "necrosis": 1, "edema": 2, "non-enhancing": 3, "enhancing": 4},
            None,
        ),
        ({"background": 0, "bone": 1}, None),
        # not nested
        (
            {"background": 0, "whole tumor": [1, 2], "tumor core": [2, 3], "enhancing tumor": [3]},
            None,
        ),
        ("not a mapping", None),
    ],
)
def test_brats_label_map(labels, expected):
    assert brats_label_map(labels) == expected


def test_msd_class_labels_are_read_as_brats_values(vols, tmp_path):
    (tmp_path / "dataset.json").write_text(
        json.dumps(
            {
                "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
                "labels": {
                    "0": "background",
                    "1": "edema",
                    "2": "non-enhancing tumor",
                    "3": "enhancing tumour",
                },
            }
        ),
        encoding="utf-8",
    )
    write_nnunet_case(vols, tmp_path / "imagesTr", "BRATS_001", tmp_path / "labelsTr", order=MODALITIES)
    (case,) = find_cases(tmp_path)
    np.testing.assert_array_equal(_assert_channels_are(case, vols), vols["seg"].array)
    assert dataset_labels(tmp_path) == {"background": 0, "NCR/NET": 1, "edema": 2, "enhancing": 4}


def test_resolve_reads_mha_and_brats2015_folders(vols, data_root, tmp_path):
    folder = write_case_folder(
        vols, tmp_path / "p1", brats_names("p1", {"t1ce": "T1C", "flair": "FLAIR"}), ".mha"
    )
    case, lines = resolve_case_channels([folder], MODALITIES)
    _assert_channels_are(case, vols)
    assert case.case_id == "p1" and lines[2] == "t1ce <- p1_T1C.mha (file name)"
    case, _ = resolve_case_channels([data_root / "brats2012_mha"], ("flair", "t1ce"))
    assert [p.name for p in case.channels.values()] == ["BRATS_HG0015_FLAIR.mha", "BRATS_HG0015_T1C.mha"]
    vsd = tmp_path / "HGG" / "brats_2013_pat0020_1"
    for k, (m, mr) in enumerate(
        {"flair": "MR_Flair", "t1": "MR_T1", "t1ce": "MR_T1c", "t2": "MR_T2"}.items()
    ):
        write_case_folder(
            vols, vsd / f"VSD.Brain.XX.O.{mr}.{100 + k}", {m: f"VSD.Brain.XX.O.{mr}.{100 + k}"}, ".mha"
        )
    case, _ = resolve_case_channels([vsd], MODALITIES)
    assert case.case_id == "brats_2013_pat0020_1"
    _assert_channels_are(case, vols)
    with pytest.raises(InputError) as e:
        resolve_case_channels([tmp_path], MODALITIES)  # a dataset (p1 and the patient), not a case: said so
    _one_line(e, "holds 2 cases", "give one case folder")


# ----------------------------------------------------------------------------------------------- ambiguity


def test_two_files_for_one_modality_are_refused(vols, tmp_path):
    folder = write_case_folder(vols, tmp_path / CASE, brats_names(CASE), ".nii.gz")
    write_case_folder(vols, folder, {"t1": "x_flair"}, ".nii.gz")  # noise named as a second FLAIR
    (case,) = find_cases(folder)
    problems = check_case(case)
    assert len(problems) == 1
    assert (
        "2 files for flair" in problems[0]
        and "x_flair.nii.gz -> flair" in problems[0]
        and FLAGS in problems[0]
    )
    with pytest.raises(InputError) as e:
        case.load()
    _one_line(e, "2 files for flair", f"{CASE}_flair.nii.gz -> flair", "x_flair.nii.gz -> flair", FLAGS)
    text = describe(folder)
    assert "problems: none" not in text and "2 files for flair" in text
    with pytest.raises(InputError) as e:
        resolve_case_channels([folder], MODALITIES)
    _one_line(e, "2 files for flair", FLAGS)
    # the flag settles it, whichever file it names
    case, lines = resolve_case_channels([folder], MODALITIES, {"flair": folder / f"{CASE}_flair.nii.gz"})
    _assert_channels_are(case, vols)
    assert lines[0] == f"flair <- {CASE}_flair.nii.gz (--flair)"
    # a model that does not read FLAIR is not concerned
    case, _ = resolve_case_channels([folder], ("t1ce", "t2"))
    assert [p.name for p in case.channels.values()] == [f"{CASE}_t1ce.nii.gz", f"{CASE}_t2.nii.gz"]


def test_extra_files_beside_the_four_channels_are_ignored_with_a_note(vols, tmp_path):
    """Issue 36 item 4: CASE_foo, CASE_seg2, a mask and old labels beside the channels do not refuse the
    case."""
    folder = write_case_folder(vols, tmp_path / CASE, brats_names(CASE), ".nii.gz")
    write_case_folder(
        vols, folder, {"t1ce": f"{CASE}_foo", "seg": f"{CASE}_seg2", "t1": f"{CASE}_mask"}, ".nii.gz"
    )
    (case,) = find_cases(folder)
    assert check_case(case) == []
    assert case.meta["ignored"] == [f"{CASE}_foo.nii.gz", f"{CASE}_mask.nii.gz", f"{CASE}_seg2.nii.gz"]
    _assert_channels_are(case, vols)
    case, lines = resolve_case_channels([folder], MODALITIES)
    _assert_channels_are(case, vols)
    assert (
        lines[0] == f"ignored {CASE}_foo.nii.gz, {CASE}_mask.nii.gz, "
        f"{CASE}_seg2.nii.gz (no channel name: not a channel)"
    )
    assert "not a channel, ignored" in describe(folder)


def test_unrecognised_file_and_missing_modality_are_refused(vols, tmp_path):
    folder = write_case_folder(vols, tmp_path / CASE, brats_names(CASE, label=False), ".nii.gz")
    write_case_folder(vols, folder, {"t1ce": "scan_7"}, ".nii.gz")
    (folder / f"{CASE}_t1ce.nii.gz").unlink()  # scan_7 may be the missing T1ce: a person must say
    with pytest.raises(InputError) as e:
        find_cases(folder)[0].load()
    _one_line(e, "not recognised", "scan_7.nii.gz -> not recognised", FLAGS)
    assert any("not recognised" in p for p in check_case(find_cases(folder)[0]))
    write_case_folder(vols, folder, {"t1ce": f"{CASE}_t1ce"}, ".nii.gz")
    (folder / "scan_7.nii.gz").unlink()
    (folder / f"{CASE}_t2.nii.gz").unlink()
    with pytest.raises(InputError) as e:
        resolve_case_channels([folder], MODALITIES)
    _one_line(e, "no file for t2", f"{CASE}_t1ce.nii.gz -> t1ce", FLAGS)
    with pytest.raises(InputError) as e:
        resolve_case_channels([folder], MODALITIES, {"t2": tmp_path / "elsewhere_t2.nii.gz"})
    _one_line(e, "--t2", "no such file")


def test_two_label_files_are_refused_for_training_not_for_prediction(vols, tmp_path):
    folder = write_case_folder(vols, tmp_path / CASE, brats_names(CASE), ".nii.gz")
    write_case_folder(vols, folder, {"seg": "fusion_labels"}, ".nii.gz")
    (case,) = find_cases(folder)
    assert check_case(case) == [
        (
            f"case {CASE}: 2 label files ({CASE}_seg.nii.gz, fusion_labels.nii.gz); keep one, "
            "or list the cases in a .csv with a 'label' column"
        )
    ]
    with pytest.raises(InputError) as e:
        case.load()
    _one_line(e, "2 label files")
    image, _, label = case.load(with_label=False)
    assert image.shape == (4, 64, 64, 48) and label is None
    case, _ = resolve_case_channels([folder], MODALITIES)
    _assert_channels_are(case, vols)


def test_brain_mask_beside_the_channels_is_not_a_channel(vols, tmp_path):
    folder = write_case_folder(vols, tmp_path / CASE, brats_names(CASE), ".nii.gz")
    write_case_folder(vols, folder, {"seg": f"{CASE}_brainmask"}, ".nii.gz")
    (case,) = find_cases(folder)
    assert check_case(case) == [] and case.meta["ignored"] == [f"{CASE}_brainmask.nii.gz"]
    assert "not a channel, ignored" in describe(folder)


@pytest.mark.slow  # slow: keeps the default suite near 5 minutes; run with -m slow
def test_channel_order_check_on_a_real_case(brats_root):
    (case,) = find_cases(brats_root / CASE)
    image, ref, _ = case.load(with_label=False)
    assert channel_order_warning(image, MODALITIES, ref.spacing) is None
    # nnU-Net's files (T1, T1ce, T2, FLAIR) taken as FLAIR, T1, T1ce, T2: the WT 0.319 input
    warning = channel_order_warning(image[[1, 2, 3, 0]], MODALITIES, ref.spacing)
    assert "given as flair, t1, t1ce, t2 look like t1, t1ce, t2, flair" in warning and FLAGS in warning
    assert "look like t2, t1, t1ce, flair" in channel_order_warning(
        image[[3, 1, 2, 0]], MODALITIES, ref.spacing
    )
    # T1 / T1ce: told apart by content now (the correlation check could not)
    assert "look like flair, t1ce, t1, t2" in channel_order_warning(
        image[[0, 2, 1, 3]], MODALITIES, ref.spacing
    )
    assert channel_order_warning(image[[1, 2, 3]], ("t1", "t1ce", "t2")) is None  # a subset: not checked
    assert channel_order_warning(image[:2], ("flair", "t1")) is None  # two channels: nothing to compare


@pytest.mark.slow  # slow: keeps the default suite near 5 minutes; run with -m slow
def test_files_named_in_the_wrong_order_are_reported(brats_root, tmp_path):
    """FLAIR saved as ..._t2 and T2 as ..._flair: the names are clear but wrong; info says so. Whole scans: a
    64 x 64 x 48 crop inside the brain is too little for a confident reading (it is not refused, nor
    flagged)."""
    folder = tmp_path / CASE
    folder.mkdir()
    for given, real in {"flair": "t2", "t1": "t1", "t1ce": "t1ce", "t2": "flair"}.items():
        (folder / f"{CASE}_{given}.nii.gz").symlink_to(brats_root / CASE / f"{CASE}_{real}.nii.gz")
    (case,) = find_cases(folder)
    (problem,) = check_case(case)
    assert problem.startswith(
        f"case {CASE}: the channels given as flair, t1, t1ce, t2 look like t2, t1, t1ce, flair"
    )
    assert "problems (1)" in describe(folder)
    assert check_case(find_cases(brats_root / CASE)[0]) == []


# ----------------------------------------------------------------------------------------- lists of files


def test_list_of_files_in_another_order_is_reordered(vols, tmp_path):
    folder = write_case_folder(vols, tmp_path / CASE, brats_names(CASE, label=False), ".nii.gz")
    given = [folder / f"{CASE}_{m}.nii.gz" for m in ("t1", "t1ce", "t2", "flair")]
    case, lines = resolve_case_channels(given, MODALITIES)
    _assert_channels_are(case, vols)
    assert case.case_id == CASE
    assert (
        lines[0]
        == "channels given in the order t1, t1ce, t2, flair; reordered to the model's flair, t1, t1ce, "
        "t2 by their names"
    )
    assert lines[1:] == [f"{m} <- {CASE}_{m}.nii.gz (file name)" for m in MODALITIES]


def test_list_without_names_keeps_the_given_order(vols, tmp_path):
    names = {m: f"scan{k}" for k, m in enumerate(MODALITIES)}
    folder = write_case_folder(vols, tmp_path / "x", names, ".nii.gz")
    case, lines = resolve_case_channels([folder / f"scan{k}.nii.gz" for k in range(4)], MODALITIES)
    _assert_channels_are(case, vols)
    assert lines[0] == "flair <- scan0.nii.gz (position 1, no modality in the name)"
    # names that contradict the order given, or repeat a modality, are refused
    write_case_folder(vols, folder, {"t2": "t2", "flair": "post"}, ".nii.gz")
    with pytest.raises(InputError) as e:
        resolve_case_channels(
            [folder / "t2.nii.gz", folder / "scan1.nii.gz", folder / "scan2.nii.gz", folder / "scan3.nii.gz"],
            MODALITIES,
        )
    _one_line(e, "t2.nii.gz -> t2", "scan1.nii.gz -> not recognised", FLAGS)
    with pytest.raises(InputError) as e:
        resolve_case_channels(
            [folder / "post.nii.gz", folder / "scan1.nii.gz", folder / "scan2.nii.gz", folder / "t2.nii.gz"],
            MODALITIES,
        )
    _one_line(e, "post.nii.gz -> t1ce", FLAGS)
    with pytest.raises(InputError) as e:
        resolve_case_channels([folder / "scan0.nii.gz"], MODALITIES)
    _one_line(e, "needs 4 channel files", FLAGS)
    with pytest.raises(InputError) as e:
        resolve_case_channels([], MODALITIES)
    _one_line(e, "no input", FLAGS)
    with pytest.raises(InputError) as e:
        resolve_case_channels([folder / "scan0.nii.gz"], ("flair",), {"t2": folder / "t2.nii.gz"})
    _one_line(e, "--t2", "does not use t2")
    # the flags alone make a case
    case, lines = resolve_case_channels(
        [], MODALITIES, {m: folder / f"scan{k}.nii.gz" for k, m in enumerate(MODALITIES)}
    )
    _assert_channels_are(case, vols)
    assert lines[2] == "t1ce <- scan2.nii.gz (--t1ce)"


# ------------------------------------------------------------------------- found by predict and by train


@pytest.fixture(scope="module")
def bundled(tmp_path_factory, vols):
    """The bundled model and its prediction on the crop as BraTS files (the reference every layout must
    give)."""
    from medseg3d.models import load_model
    from medseg3d.predict import predict

    model = load_model("brats-v1", "cpu", "fp32")
    folder = write_case_folder(vols, tmp_path_factory.mktemp("ref") / CASE, brats_names(CASE), ".nii.gz")
    (written,) = predict(model, [folder], folder.parent / "ref.nii.gz", progress=False)
    from medseg3d.io import read_volume

    return model, read_volume(written)


def _same_prediction(path, reference):
    from medseg3d.io import read_volume

    out = read_volume(path)
    np.testing.assert_array_equal(out.array, reference.array)
    np.testing.assert_allclose(out.affine, reference.affine, atol=1e-4)


def test_predict_on_an_nnunet_images_folder_without_dataset_json(bundled, vols, tmp_path):
    """The issue's WT 0.319 input: nnU-Net's channel order, no dataset.json. Now the same result as BraTS
    files."""
    from medseg3d.predict import predict

    model, reference = bundled
    assert set(np.unique(reference.array)) == {0, 1, 2, 4}  # the crop holds tumour: a real comparison
    write_nnunet_case(vols, tmp_path / "imagesTs", CASE)
    (written,) = predict(model, [tmp_path / "imagesTs"], tmp_path / "seg.nii.gz", progress=False)
    _same_prediction(written, reference)


@pytest.mark.slow
def test_predict_finds_every_case_folder_layout(bundled, vols, other_vols, tmp_path):
    from medseg3d.predict import predict

    model, reference = bundled
    folders = {
        "nrrd": write_case_folder(vols, tmp_path / "nrrd" / CASE, brats_names(CASE), ".nrrd"),
        "mha": write_case_folder(vols, tmp_path / "mha" / CASE, brats_names(CASE), ".mha"),
        "dicom": write_dicom_case(
            vols,
            tmp_path / "dicom" / CASE,
            {"flair": "FLAIR", "t1": "s2|AX T1 PRE", "t1ce": "s3|AX T1 POST GD", "t2": "T2"},
        ),
    }
    for name, folder in folders.items():
        (written,) = predict(model, [folder], tmp_path / f"{name}.nii.gz", progress=False)
        _same_prediction(written, reference)
    # a whole nnU-Net dataset
    root = write_nnunet_dataset({CASE: vols, OTHER: other_vols}, tmp_path / "Dataset137_BraTS2021")
    written = predict(model, [root], tmp_path / "out137", progress=False)
    assert sorted(p.name for p in written) == sorted([f"{CASE}.nii.gz", f"{OTHER}.nii.gz"])
    _same_prediction(tmp_path / "out137" / f"{CASE}.nii.gz", reference)


@pytest.mark.slow
def test_predict_command_on_a_dicom_case(bundled, vols, tmp_path, capsys):
    from medseg3d.cli import main

    _, reference = bundled
    folder = write_dicom_case(
        vols, tmp_path / CASE, {"flair": "AX_FLAIR", "t1": "AX_T1", "t1ce": "AX_T1_POST", "t2": "AX_T2"}
    )
    assert (
        main(
            [
                "predict",
                "brats-v1",
                str(folder),
                "-o",
                str(tmp_path / "seg.nii.gz"),
                "--quiet",
                "--device",
                "cpu",
                "--precision",
                "fp32",
            ]
        )
        == 0
    )
    _same_prediction(tmp_path / "seg.nii.gz", reference)
    assert main(["info", str(folder)]) == 0
    assert "(taken as t1ce from its folder name)" in capsys.readouterr().out


def test_training_data_of_an_nnunet_dataset_equal_the_brats_folders(vols, other_vols, tmp_path):
    """``train`` prepares its cache from the dataset: the nnU-Net conversion must give the same arrays
    (channels in the same order, labels back in BraTS values) as the same cases in BraTS folders."""
    from medseg3d.cache import open_cache, prepare_dataset
    from medseg3d.preprocess import PrepConfig

    cases = {CASE: vols, OTHER: other_vols}
    for cid, v in cases.items():
        write_case_folder(v, tmp_path / "brats" / cid, brats_names(cid), ".nii.gz")
    nnunet = write_nnunet_dataset(cases, tmp_path / "Dataset137_BraTS2021")
    config = PrepConfig(downsample=2.0)
    for name, root in (("a", tmp_path / "brats"), ("b", nnunet)):
        summary = prepare_dataset(
            root, tmp_path / f"cache_{name}", config, "brats", workers=1, progress=False
        )
        assert sorted(summary["prepared"]) == sorted(cases) and not summary["failed"]
    meta_a, a = open_cache(tmp_path / "cache_a")
    meta_b, b = open_cache(tmp_path / "cache_b")
    assert meta_a["settings"]["modalities"] == meta_b["settings"]["modalities"] == list(MODALITIES)
    for cid in cases:
        np.testing.assert_array_equal(a[cid].image, b[cid].image)
        np.testing.assert_array_equal(a[cid].label, b[cid].label)
        assert a[cid].entry["class_voxels"] == b[cid].entry["class_voxels"]
        assert min(a[cid].entry["class_voxels"]) > 0  # every BraTS class present, so a swap would show


@pytest.mark.slow
def test_train_command_on_nnunet_dicom_and_nrrd_datasets(vols, other_vols, brats_root, tmp_path):
    from medseg3d.cli import main

    third = crop_case(brats_root, "Brats18_CBICA_ABM_1")
    cases = {CASE: vols, OTHER: other_vols, "Brats18_CBICA_ABM_1": third}
    datasets = {"nnunet": write_nnunet_dataset(cases, tmp_path / "Dataset137_BraTS2021")}
    for cid, v in cases.items():
        write_case_folder(v, tmp_path / "nrrd" / cid, brats_names(cid), ".nrrd")
        write_dicom_case(
            v, tmp_path / "dicom" / cid, {"flair": "flair", "t1": "t1", "t1ce": "t1_post", "t2": "t2"}
        )
        write_case_folder(v, tmp_path / "dicom" / cid, {"seg": f"{cid}_seg"}, ".nii.gz")
    datasets["nrrd"], datasets["dicom"] = tmp_path / "nrrd", tmp_path / "dicom"
    for name, root in datasets.items():
        run = tmp_path / f"run_{name}"
        assert (
            main(
                [
                    "train",
                    str(root),
                    "--out",
                    str(run),
                    "--preset",
                    "quick",
                    "--epochs",
                    "1",
                    "--quiet",
                    "--device",
                    "cpu",
                    "--cache",
                    str(tmp_path / f"cache_{name}"),
                ]
            )
            == 0
        )
        config = json.loads((run / "config.json").read_text(encoding="utf-8"))
        assert config["dataset"] == str(root)
        cache = json.loads((tmp_path / f"cache_{name}" / "cache.json").read_text(encoding="utf-8"))
        assert cache["settings"]["modalities"] == list(MODALITIES) and sorted(cache["cases"]) == sorted(cases)
