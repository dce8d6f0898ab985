"""Deterministic ops: flips, rotation and scaling, intensity; input checks."""

import numpy as np
import pytest
import torch

from medseg3d import augment as A
from medseg3d.errors import InputError

from .samples import gen as _gen
from .samples import regions as _regions
from .samples import sample as _sample

PLANES_3D = A.PLANES[3]


# ---------------------------------------------------------------------------------------------- flips


@pytest.mark.parametrize("axes", [[0], [1], [2], [0, 2], [0, 1, 2]])
def test_flip_twice_is_identity(axes):
    image, label = _sample()
    regions = _regions(label)
    i1, l1 = A.flip(*A.flip(image, label, axes), axes)
    assert torch.equal(i1, image) and torch.equal(l1, label)
    _, r1 = A.flip(*A.flip(image, regions, axes), axes)
    assert torch.equal(r1, regions)
    once, lab_once = A.flip(image, label, axes)
    assert torch.equal(once, torch.flip(image, [a + 1 for a in axes]))
    assert torch.equal(lab_once, torch.flip(label, axes))


def test_flip_does_not_modify_inputs_and_accepts_no_label():
    image, _ = _sample()
    before = image.clone()
    out, lab = A.flip(image, None, 1)
    assert lab is None and torch.equal(image, before) and not torch.equal(out, image)


# ------------------------------------------------------------------------------------ rotation, scale


@pytest.mark.parametrize("size", [9, 10])
@pytest.mark.parametrize("k", range(3))
def test_rotation_by_90_equals_rot90(size, k):
    image, label = _sample((size, size, size), values=(0, 1, 2, 3))
    regions = _regions(label)
    angles = [0.0, 0.0, 0.0]
    angles[k] = 90.0
    a, b = PLANES_3D[k]
    rotated, rot_label = A.rotate_scale(image, label, angles)
    torch.testing.assert_close(rotated, torch.rot90(image, 1, (a + 1, b + 1)), atol=1e-4, rtol=0)
    assert torch.equal(rot_label, torch.rot90(label, 1, (a, b)))
    _, rot_regions = A.rotate_scale(image, regions, angles)
    assert torch.equal(rot_regions, torch.rot90(regions, 1, (a + 1, b + 1)))
    # -90 degrees turns the other way; 180 degrees is two quarter turns
    _, back = A.rotate_scale(image, label, [-x for x in angles])
    assert torch.equal(back, torch.rot90(label, -1, (a, b)))
    _, half = A.rotate_scale(image, label, [2 * x for x in angles])
    assert torch.equal(half, torch.rot90(label, 2, (a, b)))


def test_rotation_by_90_in_2d_equals_rot90():
    image, label = _sample((11, 11))
    rotated, rot_label = A.rotate_scale(image, label, 90.0)
    torch.testing.assert_close(rotated, torch.rot90(image, 1, (1, 2)), atol=1e-4, rtol=0)
    assert torch.equal(rot_label, torch.rot90(label, 1, (0, 1)))


def test_rotation_by_matrix_equals_rotation_by_angles():
    image, label = _sample()
    matrix = A.rotation_matrix([0.0, 35.0, 0.0], 3)
    i1, l1 = A.rotate_scale(image, label, [0.0, 35.0, 0.0], 1.1)
    i2, l2 = A.rotate_scale(image, label, torch.as_tensor(matrix), 1.1)
    assert torch.equal(i1, i2) and torch.equal(l1, l2)


def test_zero_rotation_and_unit_scale_is_identity():
    image, label = _sample()
    out, lab = A.rotate_scale(image, label, [0.0, 0.0, 0.0], 1.0)
    assert torch.equal(out, image) and torch.equal(lab, label)
    out, lab = A.rotate_scale(image, label, [360.0, 0.0, -360.0], [1.0, 1.0, 1.0])
    torch.testing.assert_close(out, image, atol=1e-5, rtol=0)
    assert torch.equal(lab, label)




@pytest.mark.parametrize("angles", [[23.0, 0.0, 0.0], [0.0, 0.0, 200.0], [17.0, -40.0, 65.0]])
@pytest.mark.parametrize("scale", [1.0, 1.15, [0.9, 1.1, 1.0]])
def test_labels_keep_their_values_and_regions_stay_binary(angles, scale):
    image, label = _sample(values=(0, 1, 2, 4))
    regions = _regions(label)
    for label_order in (0, 1):
        out, lab = A.rotate_scale(image, label, angles, scale, label_order=label_order)
        assert out.shape == image.shape and out.dtype == image.dtype
        assert lab.shape == label.shape and lab.dtype == label.dtype
        assert set(lab.unique().tolist()) <= {0, 1, 2, 4}
        _, reg = A.rotate_scale(image, regions, angles, scale, label_order=label_order)
        assert reg.shape == regions.shape and reg.dtype == regions.dtype
        assert set(reg.unique().tolist()) <= {0.0, 1.0}


def test_rotation_pads_with_zero_and_background():
    image = torch.ones(1, 16, 16, 16)
    label = torch.full((16, 16, 16), 3)
    out, lab = A.rotate_scale(image, label, [45.0, 0.0, 0.0])
    assert out[0, 0, 0, 8] == 0 and lab[0, 0, 8] == 0  # a corner of the plane came from outside
    assert out[0, 8, 8, 8] == pytest.approx(1.0) and lab[8, 8, 8] == 3


def test_scale_above_one_magnifies():
    label = torch.zeros(16, 16, 16, dtype=torch.long)
    label[6:10, 6:10, 6:10] = 1
    image = label[None].float()
    _, big = A.rotate_scale(image, label, [0.0, 0.0, 0.0], 2.0)
    _, small = A.rotate_scale(image, label, [0.0, 0.0, 0.0], 0.5)
    assert int(big.sum()) == 8**3 and int(small.sum()) == 2**3


def test_bool_and_uint8_labels_keep_dtype():
    image, label = _sample()
    for lab in ((label > 1), (label > 1).to(torch.uint8)):
        _, out = A.rotate_scale(image, lab, [0.0, 30.0, 0.0])
        assert out.dtype == lab.dtype


# --------------------------------------------------------------------------------------------- intensity


def test_gamma_one_is_identity_and_background_stays_zero():
    image, _ = _sample()
    assert torch.equal(A.gamma(image, 1.0), image)
    for g in (0.7, 1.5, [0.8, 1.3]):
        out = A.gamma(image, g)
        background = (image == 0).all(0)
        assert torch.all(out[:, background] == 0)
        fg = ~background
        for ch in range(image.shape[0]):  # the min and max inside the mask are kept
            assert out[ch][fg].min() == pytest.approx(float(image[ch][fg].min()), abs=1e-5)
            assert out[ch][fg].max() == pytest.approx(float(image[ch][fg].max()), abs=1e-5)
    assert A.gamma(image, 0.5)[:, 2:, 2:, 2:].mean() > image[:, 2:, 2:, 2:].mean()  # gamma < 1 brightens


def test_intensity_and_noise_keep_background():
    image, _ = _sample()
    background = (image == 0).all(0)
    out = A.intensity(image, [1.1, 0.9], [0.5, -0.5])
    assert torch.all(out[:, background] == 0)
    torch.testing.assert_close(out[0][~background], image[0][~background] * 1.1 + 0.5)
    noisy = A.gaussian_noise(image, 0.1, _gen(0))
    assert torch.all(noisy[:, background] == 0) and not torch.equal(noisy, image)
    assert torch.equal(noisy, A.gaussian_noise(image, 0.1, _gen(0)))
    assert torch.equal(A.intensity(image, 1.0, 0.0), image)



# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "image, label",
    [
        (torch.zeros(2, 10, 10, 10), torch.zeros(10, 10, 9, dtype=torch.long)),
        (torch.zeros(2, 10, 10, 10), torch.zeros(3, 10, 9, 10)),
        (torch.zeros(2, 10, 10), torch.zeros(10, 10, 10, 10)),
        (torch.zeros(10, 10), None),
        (np.zeros((2, 10, 10, 10), dtype=np.float32), None),
        (torch.zeros(2, 10, 10, 10, dtype=torch.long), None),
    ],
)
def test_bad_inputs_raise_one_line_input_error(image, label):
    for call in (
        lambda: A.flip(image, label, [0]),
        lambda: A.rotate_scale(image, label, [10.0, 0.0, 0.0]),
        lambda: A.build_augment("default")(image, label, _gen(0)),
    ):
        with pytest.raises(InputError) as info:
            call()
        assert "\n" not in str(info.value)


def test_bad_parameters_raise_input_error():
    image, label = _sample()
    with pytest.raises(InputError, match="unknown augmentation"):
        A.build_augment("fancy")
    with pytest.raises(InputError, match="angle"):
        A.rotate_scale(image, label, 30.0)  # 3D needs one angle per plane
    with pytest.raises(InputError, match="scale"):
        A.rotate_scale(image, label, [0, 0, 0], -1.0)
    with pytest.raises(InputError, match="axis"):
        A.flip(image, label, [3])
    with pytest.raises(InputError, match="gamma"):
        A.gamma(image, 0.0)
    with pytest.raises(InputError, match="per channel"):
        A.intensity(image, [1.0, 1.0, 1.0])
