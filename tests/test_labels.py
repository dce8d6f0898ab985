"""Label schemes: file values <-> classes, merges, regions, and dataset.json labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseg3d.errors import InputError
from medseg3d.io import read_volume
from medseg3d.labels import (
    BINARY,
    BRATS,
    BRATS2012,
    BRATS2015,
    LabelScheme,
    get_scheme,
    label_values,
    scheme_from_labels,
)


@pytest.fixture(scope="module")
def seg2018(brats_root):
    return read_volume(brats_root / "Brats18_2013_20_1" / "Brats18_2013_20_1_seg.nii.gz").array


@pytest.fixture(scope="module")
def seg2015(data_root):
    return read_volume(data_root / "brats2015_labels" / "Brats18_2013_20_1_seg_brats2015.nii.gz").array


def test_brats_values_to_classes_and_back():
    values = np.array([0, 1, 2, 4, 4, 0], dtype=np.int16)
    classes = BRATS.to_classes(values)
    assert classes.dtype == np.uint8
    np.testing.assert_array_equal(classes, [0, 1, 2, 3, 3, 0])
    np.testing.assert_array_equal(BRATS.to_values(classes), values)
    assert BRATS.n_classes == 4 and BRATS.n_outputs == 4


def test_brats_round_trip_real_seg(seg2018):
    classes = BRATS.to_classes(seg2018)
    assert set(np.unique(classes)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(np.bincount(classes.ravel()), [np.sum(seg2018 == v) for v in (0, 1, 2, 4)])
    np.testing.assert_array_equal(BRATS.to_values(classes), seg2018)


def test_brats2015_labels_read_as_brats_equal_the_2018_map(seg2015, seg2018):
    assert seg2015.dtype == np.float32  # the shared file stores labels as floats: read as integers
    assert set(np.unique(seg2015)) == {0, 1, 2, 3, 4}
    merged = BRATS.to_classes(seg2015)  # 3 (non-enhancing) -> class of 1
    np.testing.assert_array_equal(merged, BRATS.to_classes(seg2018))
    np.testing.assert_array_equal(BRATS.to_values(merged), seg2018)


def test_brats2015_five_classes(seg2015, seg2018):
    classes = BRATS2015.to_classes(seg2015)
    assert BRATS2015.n_classes == 5
    np.testing.assert_array_equal(
        np.bincount(classes.ravel(), minlength=5), [np.sum(seg2015 == v) for v in range(5)]
    )
    np.testing.assert_array_equal(BRATS2015.to_values(classes), seg2015.astype(np.uint8))
    # the 2015 regions are the 2018 regions of the same patient
    m15 = BRATS2015.region_masks(classes)
    m18 = BRATS.region_masks(BRATS.to_classes(seg2018))
    np.testing.assert_array_equal(m15, m18)
    # the 2018 file has no 3: reading it with the five-class scheme works (values are a subset)
    assert BRATS2015.to_classes(seg2018).max() == 4


def test_binary_merges_every_tumour_label(seg2018, seg2015):
    np.testing.assert_array_equal(BINARY.to_classes(seg2018), (seg2018 > 0).astype(np.uint8))
    np.testing.assert_array_equal(BINARY.to_classes(seg2015), (seg2015 > 0).astype(np.uint8))
    np.testing.assert_array_equal(BINARY.to_values(np.array([0, 1])), [0, 1])


def test_region_masks_counts(seg2018):
    masks = BRATS.region_masks(BRATS.to_classes(seg2018))
    assert masks.shape == (3,) + seg2018.shape and masks.dtype == bool
    wt, tc, et = (int(m.sum()) for m in masks)
    assert wt == int(np.isin(seg2018, [1, 2, 4]).sum()) == 64066 + 109935 + 43379
    assert tc == int(np.isin(seg2018, [1, 4]).sum()) == 64066 + 43379
    assert et == int((seg2018 == 4).sum()) == 43379
    assert list(BRATS.regions) == ["WT", "TC", "ET"]


def test_regions_to_values_inverts_region_masks(seg2018, seg2015):
    masks = BRATS.region_masks(BRATS.to_classes(seg2018))
    np.testing.assert_array_equal(BRATS.regions_to_values(masks), seg2018)
    # the 2015 scheme has two values in TC minus ET (1 and 3): the masks come back, painted with 1
    masks15 = BRATS2015.region_masks(BRATS2015.to_classes(seg2015))
    back = BRATS2015.regions_to_values(masks15)
    np.testing.assert_array_equal(BRATS2015.region_masks(BRATS2015.to_classes(back)), masks15)


def test_regions_to_values_non_nested_masks_paint_smallest_last():
    masks = np.zeros((3, 4), bool)
    masks[0, :2] = True  # WT
    masks[2, 3] = True  # ET outside WT (a sigmoid network can do that)
    np.testing.assert_array_equal(BRATS.regions_to_values(masks), [2, 2, 0, 4])


def test_unknown_values_are_rejected_and_named():
    with pytest.raises(InputError) as e:
        BRATS.to_classes(np.array([0, 1, 5, 7, 7]), where="case X label")
    msg = str(e.value)
    assert "\n" not in msg
    assert "case X label" in msg and "[5, 7]" in msg and "brats" in msg
    with pytest.raises(InputError) as e:
        BRATS.to_classes(np.array([0, -1]))
    assert "[-1]" in str(e.value)
    with pytest.raises(InputError) as e:
        BRATS.to_classes(np.array([0, 300], dtype=np.int16))
    assert "[300]" in str(e.value)
    with pytest.raises(InputError):
        BRATS2012.to_classes(np.array([0, 4]))
    with pytest.raises(InputError):
        BRATS2015.to_classes(np.array([0, 5]))


def test_non_integer_labels_rejected():
    for bad in (np.array([0.0, 1.5]), np.array([0.0, np.nan]), np.array([0.0, np.inf])):
        with pytest.raises(InputError) as e:
            BRATS.to_classes(bad)
        assert "integer" in str(e.value)
    with pytest.raises(InputError):
        BRATS.to_classes(np.array([0 + 1j]))


def test_label_values():
    np.testing.assert_array_equal(label_values(np.array([4, 0, 4, 2], dtype=np.int16)), [0, 2, 4])
    np.testing.assert_array_equal(label_values(np.array([-3, 5, -3])), [-3, 5])
    np.testing.assert_array_equal(label_values(np.array([0, 10**6])), [0, 10**6])
    assert label_values(np.zeros(0, np.uint8)).size == 0


def test_brats2012_scheme_on_the_shared_truth(data_root):
    truth = read_volume(data_root / "brats2012_mha" / "BRATS_HG0015_truth.mha").array
    classes = BRATS2012.to_classes(truth)
    np.testing.assert_array_equal(BRATS2012.to_values(classes), truth)
    wt, tc = BRATS2012.region_masks(classes)
    assert wt.sum() == (truth > 0).sum() and tc.sum() == (truth == 2).sum()


def test_get_scheme_and_region_training():
    assert get_scheme("brats") is BRATS
    assert get_scheme("brats2015") is BRATS2015
    regions = get_scheme("regions")
    assert regions.region_training and regions.n_outputs == 3 and regions.values == BRATS.values
    assert get_scheme("brats2015-regions").n_outputs == 3
    with pytest.raises(InputError) as e:
        get_scheme("bratz")
    assert "bratz" in str(e.value) and "brats" in str(e.value)
    with pytest.raises(InputError):
        LabelScheme("x", (0, 1), ("a", "b")).with_region_training()


def test_scheme_dict_round_trip():
    for scheme in (BRATS, BRATS2015, BRATS2012, BINARY, get_scheme("regions")):
        d = json.loads(json.dumps(scheme.to_dict()))
        assert LabelScheme.from_dict(d) == scheme
    with pytest.raises(InputError):
        LabelScheme.from_dict({"name": "x"})


def test_scheme_from_nnunet_v2_labels():
    scheme = scheme_from_labels(
        {"background": 0, "edema": 1, "non-enhancing tumor": 2, "enhancing tumour": 3}
    )
    assert scheme.values == (0, 1, 2, 3)
    assert scheme.class_names == ("background", "edema", "non-enhancing tumor", "enhancing tumour")
    assert scheme.regions == {"foreground": (1, 2, 3)}
    np.testing.assert_array_equal(scheme.to_classes(np.array([3, 0, 1])), [3, 0, 1])


def test_scheme_from_msd_v1_labels_with_gaps():
    scheme = scheme_from_labels({"0": "background", "2": "liver", "1": "tumour", "4": "vessel"})
    assert scheme.values == (0, 1, 2, 4)
    assert scheme.class_names == ("background", "tumour", "liver", "vessel")
    np.testing.assert_array_equal(scheme.to_classes(np.array([4, 2])), [3, 2])
    with pytest.raises(InputError):
        scheme.to_classes(np.array([3]))


def test_scheme_from_labels_errors():
    with pytest.raises(InputError) as e:
        scheme_from_labels({"background": 0, "whole tumor": [1, 2, 3]})
    assert "region" in str(e.value)
    with pytest.raises(InputError) as e:
        scheme_from_labels({"edema": 1, "core": 2})
    assert "background" in str(e.value)
    with pytest.raises(InputError) as e:
        scheme_from_labels({"background": 0, "edema": "one"})
    assert "edema" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError):
        scheme_from_labels({"background": 0, "a": 1, "b": 1})
    with pytest.raises(InputError):
        scheme_from_labels(["background"])


def test_label_values_over_the_whole_int16_range():
    from medseg3d.labels import label_values

    a = np.array([-32768, 0, 32767, 5, 5], np.int16)  # max - min = 65535: int16 arithmetic would wrap
    np.testing.assert_array_equal(label_values(a), [-32768, 0, 5, 32767])
    np.testing.assert_array_equal(label_values(np.array([-3, -3, 1], np.int8)), [-3, 1])


def _tumour(edema: int, core: int, enhancing: int | None = None) -> np.ndarray:
    """A synthetic tumour: an edema ball (radius 9) around a core ball (radius 5) around an enhancing one
    (2)."""
    z, y, x = np.mgrid[:30, :30, :30]
    r = np.sqrt((x - 15) ** 2 + (y - 15) ** 2 + (z - 15) ** 2)
    out = np.zeros((30, 30, 30), np.uint8)
    out[r <= 9] = edema
    out[r <= 5] = core
    if enhancing is not None:
        out[r <= 2] = enhancing
    return out


@pytest.mark.parametrize(
    ("labels", "declared", "expected", "noted"),
    [
        ((2, 1, 4), "brats", "brats", False),  # BraTS 2017+ as declared
        ((1, 2, None), "brats", "brats2012", True),  # BRATS 2012: 1 edema, 2 core
        ((1, 2, 3), "brats", "nnunet-brats", True),  # nnU-Net: 1 edema, 2 NCR/NET, 3 enhancing
        ((2, 3, None), "brats", "brats", False),  # BRATS 2015 without enhancing: 3 merged into 1 as before
        ((2, 1, None), "brats2012", "brats", True),  # BraTS 2017+ without enhancing, declared 2012
        ((1, 2, None), "brats2012", "brats2012", False),
        ((1, 2, 3), "nnunet-brats", "nnunet-brats", False),
    ],
)
def test_resolve_convention(labels, declared, expected, noted):
    from medseg3d.labels import LabelStats, get_scheme, resolve_convention

    stats = LabelStats().add(_tumour(*labels))
    scheme, note = resolve_convention(get_scheme(declared), stats, "refs")
    assert scheme.name == expected
    assert (note is not None) == noted
    if noted:
        assert note.startswith("refs: label values") and f"pass --labels {expected}" in note


def test_resolve_convention_refuses_three_without_four_when_unclear():
    from medseg3d.labels import LabelStats, get_scheme, resolve_convention

    lab = np.zeros((20, 20, 20), np.uint8)
    lab[5:9, 5:9, 5:9] = 3
    lab[1, 1, 1], lab[2, 2, 2] = 1, 2  # too few voxels to tell the edema
    with pytest.raises(InputError) as e:
        resolve_convention(get_scheme("brats"), LabelStats().add(lab), "refs", option="--ref-labels")
    assert "[0, 1, 2, 3]" in str(e.value) and "--ref-labels nnunet-brats or brats2015" in str(e.value)
    # other schemes are left alone
    hand = get_scheme("hand")
    assert resolve_convention(hand, LabelStats().add(lab), "refs") == (hand, None)


def test_predictions_with_only_0_1_2_keep_the_declared_scheme():
    from medseg3d.labels import LabelStats, get_scheme, resolve_convention

    stats = LabelStats().add(_tumour(1, 2))  # shaped like BRATS 2012, but a prediction's shapes prove nothing
    assert resolve_convention(get_scheme("brats"), stats, "preds", by_shape=False) == (
        get_scheme("brats"),
        None,
    )
    nnunet = LabelStats().add(_tumour(1, 2, 3))  # 3 without 4 is still told apart
    assert resolve_convention(get_scheme("brats"), nnunet, "preds", by_shape=False)[0].name == "nnunet-brats"


def test_value_masks_is_one_mask_per_group_of_label_values():
    from medseg3d.labels import value_masks

    labels = np.array([[0, 1, 2], [4, 2, 3]], dtype=np.int16)
    masks = value_masks(labels, {"WT": (1, 2, 4), "TC": [1, 4], "ET": 4, "none": (7,)})
    assert list(masks) == ["WT", "TC", "ET", "none"]
    assert masks["WT"].tolist() == [[False, True, True], [True, True, False]]
    assert masks["TC"].tolist() == [[False, True, False], [True, False, False]]
    assert masks["ET"].tolist() == [[False, False, False], [True, False, False]]
    assert masks["none"].dtype == bool and not masks["none"].any()
