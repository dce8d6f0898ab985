"""Preprocessing steps and their inverses, on synthetic arrays and on a real BraTS case."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from medseg3d.datasets import find_cases
from medseg3d.errors import InputError
from medseg3d.labels import BRATS
from medseg3d.preprocess import (
    PrepConfig,
    PrepRecord,
    bounding_box,
    centred_box,
    crop_or_pad,
    foreground_mask,
    paste,
    preprocess,
    resize_image,
    resize_labels,
    target_shape,
    undo_labels,
    undo_probabilities,
    zscore,
)

CASE = "Brats18_2013_20_1"  # tumour partly outside the paper's 160x144x128 box
CASE_INSIDE = "Brats18_2013_2_1"  # tumour inside it


@pytest.fixture(scope="module")
def real(brats_root):
    """(image (4, X, Y, Z), affine, classes) of two real cases."""
    out = {}
    for cid in (CASE, CASE_INSIDE):
        case = find_cases(brats_root / cid)[0]
        image, ref, label = case.load()
        out[cid] = (image, ref.affine, BRATS.to_classes(label))
    return out


def _dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _box_mask(shape, start, stop):
    m = np.zeros(shape, bool)
    m[tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(start, stop, shape))] = True
    return m


# --------------------------------------------------------------------------------------------- boxes


def test_foreground_mask_any_channel():
    img = np.zeros((2, 4, 4, 4))
    img[0, 1, 1, 1] = 3
    img[1, 2, 2, 2] = -1
    m = foreground_mask(img)
    assert m.sum() == 2 and m[1, 1, 1] and m[2, 2, 2]


def test_bounding_box_margin_and_clip():
    m = np.zeros((20, 20, 20), bool)
    m[5:9, 1:3, 17:19] = True
    assert bounding_box(m) == ((5, 1, 17), (9, 3, 19))
    assert bounding_box(m, margin=2) == ((3, 0, 15), (11, 5, 20))
    with pytest.raises(InputError):
        bounding_box(np.zeros((3, 3, 3), bool))


def test_bbox_crop_of_image_and_inverse():
    img = np.zeros((1, 30, 30, 30), np.float32)
    img[0, 10:20, 5:8, 12:25] = np.arange(10 * 3 * 13).reshape(10, 3, 13) + 1
    start, stop = bounding_box(foreground_mask(img), 1)
    crop = crop_or_pad(img, start, stop)
    assert crop.shape == (1, 12, 5, 15)
    np.testing.assert_array_equal(paste(crop, start, stop, (30, 30, 30)), img)


def test_centred_box_on_centre_of_mass():
    m = np.zeros((100, 90, 80), bool)
    m[40:61, 30:51, 35:46] = True  # centre (50, 40, 40)
    start, stop = centred_box(m, (20, 20, 10))
    assert tuple(b - a for a, b in zip(start, stop)) == (20, 20, 10)
    for a, s, c in zip(start, (20, 20, 10), (50, 40, 40)):  # even sizes: centred to half a voxel
        assert abs(a + (s - 1) / 2 - c) == 0.5
    # odd sizes: the centre voxel is the middle voxel of the box
    start, stop = centred_box(m, (21, 21, 11))
    assert start == (40, 30, 35) and stop == (61, 51, 46)
    single = np.zeros((30, 30, 30), bool)
    single[10, 10, 10] = True
    assert centred_box(single, (3, 3, 3)) == ((9, 9, 9), (12, 12, 12))


def test_centred_box_shifted_to_stay_inside():
    m = np.zeros((100, 90, 80), bool)
    m[0:6, 85:90, 40:42] = True  # at two faces
    start, stop = centred_box(m, (30, 30, 30))
    assert start[0] == 0 and stop[1] == 90
    assert all(a >= 0 for a in start) and all(b <= n for b, n in zip(stop, m.shape))
    assert stop[2] - start[2] == 30


def test_fixed_crop_paper_size_on_real_case(real):
    image, _, _ = real[CASE]
    mask = foreground_mask(image)
    start, stop = centred_box(mask, (160, 144, 128))
    assert tuple(b - a for a, b in zip(start, stop)) == (160, 144, 128)
    assert all(a >= 0 for a in start) and all(b <= n for b, n in zip(stop, (240, 240, 155)))
    com = ndimage.center_of_mass(mask)
    for axis, (a, b) in enumerate(zip(start, stop)):
        centre = (a + b - 1) / 2
        inside = 0 < a and b < mask.shape[axis]
        if inside:  # not shifted: centred on the centre of mass to half a voxel
            assert abs(centre - com[axis]) <= 0.5 + 1e-9


def test_padding_when_crop_is_larger_than_volume():
    vol = np.arange(1, 1 + 10 * 12 * 6, dtype=np.int16).reshape(1, 10, 12, 6)
    start, stop = centred_box(vol[0] > 0, (16, 12, 9))
    assert start == (-3, 0, -1) and stop == (13, 12, 8)
    crop = crop_or_pad(vol, start, stop)
    assert crop.shape == (1, 16, 12, 9) and crop.dtype == vol.dtype
    np.testing.assert_array_equal(crop[0, 3:13, :, 1:7], vol[0])
    assert crop[0, :3].sum() == 0 and crop[0, 13:].sum() == 0 and crop[0, :, :, 0].sum() == 0
    np.testing.assert_array_equal(paste(crop, start, stop, (10, 12, 6)), vol)


# -------------------------------------------------------------------------------------------- z-score


def test_zscore_inside_mask_background_zero():
    rng = np.random.default_rng(0)
    img = np.zeros((2, 20, 20, 20), np.float32)
    mask = np.zeros((20, 20, 20), bool)
    mask[4:16, 3:17, 5:15] = True
    img[0][mask] = rng.normal(300, 40, mask.sum())
    img[1][mask] = rng.normal(-5, 2, mask.sum())
    out, means, stds = zscore(img, mask)
    assert out.dtype == np.float32
    for c in range(2):
        assert out[c][mask].mean() == pytest.approx(0, abs=1e-5)
        assert out[c][mask].std() == pytest.approx(1, abs=1e-5)
        assert np.all(out[c][~mask] == 0)
    assert means[0] == pytest.approx(img[0][mask].mean()) and stds[1] == pytest.approx(img[1][mask].std())


def test_zscore_real_case(real):
    image, affine, _ = real[CASE]
    x, _, rec = preprocess(image, affine, PrepConfig())
    mask = crop_or_pad(foreground_mask(image), rec.box_start, rec.box_stop)
    for c in range(4):
        assert float(x[c][mask].mean()) == pytest.approx(0, abs=1e-3)
        assert float(x[c][mask].std()) == pytest.approx(1, abs=1e-3)
        assert np.all(x[c][~mask] == 0)


def test_constant_channel_rejected():
    img = np.zeros((2, 10, 10, 10), np.float32)
    img[:, 2:8, 2:8, 2:8] = 5.0
    img[0, 3, 3, 3] = 9.0
    with pytest.raises(InputError) as e:
        preprocess(img, np.eye(4), PrepConfig())
    assert "channel 1" in str(e.value) and "constant" in str(e.value)


def test_empty_image_rejected():
    with pytest.raises(InputError):
        preprocess(np.zeros((1, 5, 5, 5)), np.eye(4), PrepConfig())
    with pytest.raises(InputError):
        preprocess(np.zeros((5, 5, 5)), np.eye(4), PrepConfig())
    with pytest.raises(InputError):
        preprocess(
            np.ones((1, 5, 5, 5)),
            np.eye(4),
            PrepConfig(normalize="none"),
            classes=np.zeros((5, 5, 4), np.uint8),
        )


# ------------------------------------------------------------------------------- exact inverse, no resampling


@pytest.mark.parametrize("crop", ["bbox", "fixed", "none"])
def test_real_labels_come_back_identical(real, crop):
    image, affine, classes = real[CASE_INSIDE]
    config = PrepConfig(crop=crop, crop_size=(160, 144, 128) if crop == "fixed" else None)
    x, y, rec = preprocess(image, affine, config, classes, 4)
    assert y.shape == x.shape[1:] == rec.shape
    back = undo_labels(y, rec, 4)
    assert back.shape == classes.shape
    np.testing.assert_array_equal(back, classes)
    # the record survives JSON
    rec2 = PrepRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    np.testing.assert_array_equal(undo_labels(y, rec2, 4), classes)


def test_fixed_crop_cuts_only_outside_the_box(real):
    image, affine, classes = real[CASE]
    _, y, rec = preprocess(image, affine, PrepConfig(crop="fixed", crop_size=(160, 144, 128)), classes, 4)
    inside = _box_mask(classes.shape, rec.box_start, rec.box_stop)
    back = undo_labels(y, rec, 4)
    np.testing.assert_array_equal(back[inside], classes[inside])
    assert np.all(back[~inside] == 0)
    assert (classes[~inside] > 0).sum() > 0  # this case's tumour reaches outside the paper's box


def test_bbox_keeps_labels_outside_the_image_foreground():
    img = np.zeros((1, 20, 20, 20), np.float32)
    img[0, 5:10, 5:10, 5:10] = np.arange(125).reshape(5, 5, 5) + 1
    classes = np.zeros((20, 20, 20), np.uint8)
    classes[7, 7, 7] = 1
    classes[15, 2, 18] = 2  # a labelled voxel where the image is 0
    _, y, rec = preprocess(img, np.eye(4), PrepConfig(margin=0), classes, 3)
    np.testing.assert_array_equal(undo_labels(y, rec, 3), classes)


def test_padded_fixed_crop_inverse():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(2, 30, 20, 25)).astype(np.float32)
    classes = rng.integers(0, 3, size=(30, 20, 25)).astype(np.uint8)
    x, y, rec = preprocess(img, np.eye(4), PrepConfig(crop="fixed", crop_size=(40, 21, 32)), classes, 3)
    assert x.shape == (2, 40, 21, 32)
    assert rec.box_start[0] < 0 and rec.box_start[2] < 0
    np.testing.assert_array_equal(undo_labels(y, rec, 3), classes)


# ------------------------------------------------------------------------------------------ down-sampling


def test_downsample_by_two_geometry(real):
    """Each low-resolution voxel is the mean of its 2x2x2 block, and the record's affine puts it at the
    world centre of that block."""
    image, affine, classes = real[CASE]
    config = PrepConfig(crop="fixed", crop_size=(160, 144, 128), downsample=2, normalize="none")
    x, _, rec = preprocess(image, affine, config, classes, 4)
    assert x.shape == (4, 80, 72, 64) and rec.shape == (80, 72, 64)
    crop = crop_or_pad(image, rec.box_start, rec.box_stop)
    blocks = crop.reshape(4, 80, 2, 72, 2, 64, 2).mean(axis=(2, 4, 6))
    np.testing.assert_allclose(x, blocks, rtol=1e-5, atol=1e-3)
    rec_aff = np.asarray(rec.affine)
    rng = np.random.default_rng(0)
    for p in [(0, 0, 0), (79, 71, 63)] + [tuple(rng.integers(0, (80, 72, 64))) for _ in range(10)]:
        world = rec_aff @ np.array(p + (1,), float)
        first = np.array(rec.box_start) + 2 * np.array(p)  # the block's first original voxel
        block_centre = affine @ np.append(first + 0.5, 1.0)
        np.testing.assert_allclose(world, block_centre, atol=1e-9)
    assert np.linalg.norm(rec_aff[:3, :3], axis=0) == pytest.approx([2, 2, 2])


def test_resampled_affine_matches_interpolation_for_odd_sizes(real):
    """With a non-integer factor (odd bbox), the image at low-res voxel p equals trilinear interpolation of
    the original at the point the record's affine gives for p."""
    image, affine, _ = real[CASE]
    x, _, rec = preprocess(image[:1], affine, PrepConfig(downsample=2, normalize="none"))
    crop_shape = rec.crop_shape
    assert any(n % 2 for n in crop_shape)  # the interesting case: factor != 2 on some axis
    to_orig = np.linalg.inv(affine) @ np.asarray(rec.affine)
    rng = np.random.default_rng(1)
    pts = np.array([rng.integers(1, np.array(rec.shape) - 1) for _ in range(200)])
    idx = (to_orig @ np.c_[pts, np.ones(len(pts))].T)[:3]
    expected = ndimage.map_coordinates(image[0], idx, order=1)
    np.testing.assert_allclose(x[0][tuple(pts.T)], expected, rtol=1e-4, atol=1e-2)


def test_downsample_undo_shape_and_overlap(real):
    image, affine, classes = real[CASE]
    _, y, rec = preprocess(image, affine, PrepConfig(downsample=2), classes, 4)
    assert rec.shape == tuple(round(n / 2) for n in rec.crop_shape)
    back = undo_labels(y, rec, 4)
    assert back.shape == classes.shape == (240, 240, 155)
    wt = _dice(back > 0, classes > 0)
    et = _dice(back == 3, classes == 3)
    assert wt > 0.9, wt
    assert et > 0.7, et


def test_target_spacing():
    cfg = PrepConfig(spacing=(2.0, 2.0, 3.0))
    assert target_shape((100, 80, 60), (1.0, 1.0, 1.0), cfg) == (50, 40, 20)
    img = np.random.default_rng(0).normal(size=(1, 40, 30, 30)).astype(np.float32) + 10
    aff = np.diag([1.0, 1.0, 1.5, 1.0])
    x, _, rec = preprocess(img, aff, PrepConfig(crop="none", spacing=(2.0, 2.0, 3.0)))
    assert x.shape == (1, 20, 15, 15)
    assert np.linalg.norm(np.asarray(rec.affine)[:3, :3], axis=0) == pytest.approx([2, 2, 3])


def test_resize_labels_majority():
    classes = np.zeros((4, 4, 4), np.uint8)
    classes[:2, :2, :2] = 2
    classes[0, 0, 0] = 1  # one voxel of eight: the block stays 2
    small = resize_labels(classes, (2, 2, 2), 3)
    assert small[0, 0, 0] == 2 and small.sum() == 2 and small.dtype == np.uint8
    assert resize_labels(classes, (4, 4, 4)) is classes
    assert resize_image(np.ones((1, 3, 3, 3), np.float32), (6, 6, 6)).shape == (1, 6, 6, 6)


# --------------------------------------------------------------------------------------- probabilities


def test_undo_probabilities_fills_background_outside_box(real):
    image, affine, classes = real[CASE]
    _, y, rec = preprocess(image, affine, PrepConfig(downsample=2), classes, 4)
    probs = np.eye(4, dtype=np.float32)[y].transpose(3, 0, 1, 2)  # one-hot (4, x, y, z)
    full = undo_probabilities(probs, rec)
    assert full.shape == (4, 240, 240, 155) and full.dtype == np.float32
    outside = ~_box_mask((240, 240, 155), rec.box_start, rec.box_stop)
    assert outside.any()
    assert np.all(full[0][outside] == 1) and np.all(full[1:, outside] == 0)
    np.testing.assert_allclose(full.sum(0), 1, atol=1e-5)
    assert _dice(full.argmax(0) > 0, classes > 0) > 0.9
    # region outputs: nothing is painted outside the box
    regions = undo_probabilities(probs[1:], rec, fill_background=False)
    assert np.all(regions[:, outside] == 0)


def test_undo_probabilities_exact_without_resampling(real):
    image, affine, classes = real[CASE_INSIDE]
    _, y, rec = preprocess(image, affine, PrepConfig(), classes, 4)
    probs = np.eye(4, dtype=np.float32)[y].transpose(3, 0, 1, 2)
    np.testing.assert_array_equal(undo_probabilities(probs, rec).argmax(0), classes)


# ---------------------------------------------------------------------------------------------- config


def test_config_validation_and_dict_round_trip():
    for bad in (
        {"crop": "brain"},
        {"crop": "fixed"},
        {"crop": "fixed", "crop_size": (1, 2)},
        {"downsample": 0},
        {"normalize": "minmax"},
        {"margin": -1},
        {"crop": "fixed", "crop_size": (0, 10, 10)},
        {"spacing": (1, 0, 1)},
    ):
        with pytest.raises(InputError):
            PrepConfig(**bad)
    cfg = PrepConfig(crop="fixed", crop_size=[160, 144, 128], downsample=2, spacing=None)
    assert cfg.crop_size == (160, 144, 128)
    assert PrepConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(InputError):
        PrepConfig.from_dict({"crop": "bbox", "colour": "blue"})
