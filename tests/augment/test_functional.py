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


# ------------------------------------------------- blur, low resolution, contrast, brightness (issue #22)

U32 = torch.finfo(torch.float32).eps / 2  # unit roundoff of float32


@pytest.mark.parametrize("sigma", [0.5, 0.8, 1.0])
def test_blur_of_a_delta_is_the_normalised_gaussian_kernel(sigma):
    kernel = A.gaussian_kernel(sigma)
    radius = int(np.ceil(3 * sigma))
    assert kernel.shape == (2 * radius + 1,) and torch.equal(kernel, kernel.flip(0))
    assert abs(float(kernel.sum()) - 1) <= 4 * torch.finfo(torch.float64).eps
    image = torch.zeros(2, 11, 12, 13)
    image[0, 5, 6, 7] = 1.0
    out = A.gaussian_blur(image, [sigma, 0.0], keep_background=False)
    assert out.shape == image.shape and out.dtype == image.dtype
    expected = torch.zeros(11, 12, 13, dtype=torch.float64)
    box = (slice(5 - radius, 6 + radius), slice(6 - radius, 7 + radius), slice(7 - radius, 8 + radius))
    expected[box] = kernel[:, None, None] * kernel[None, :, None] * kernel[None, None, :]
    # each voxel is the float32 product of three float32-rounded weights: 3 + 2 roundings of u each
    torch.testing.assert_close(out[0].double(), expected, rtol=5 * U32 * 1.01, atol=0)
    assert torch.equal(out[1], image[1])  # sigma 0 leaves a channel as it is
    assert torch.count_nonzero(out[0]) == (2 * radius + 1) ** 3


def test_blur_of_a_constant_is_constant_and_the_background_stays_zero():
    c = 2.5
    # per axis: <= 7 float32 weights rounded (u each) and 6 partial sums rounded (u * c each); three axes
    tolerance = 3 * (7 + 6) * U32 * c * 1.01
    out = A.gaussian_blur(torch.full((1, 9, 10, 11), c), 1.0)
    assert float((out - c).abs().max()) <= tolerance  # replicate padding: constant up to the edges
    cube = torch.zeros(2, 16, 16, 16)
    cube[:, 2:14, 2:14, 2:14] = c
    out = A.gaussian_blur(cube, [1.0, 0.5])
    assert torch.all(out[:, cube[0] == 0] == 0)  # keep_background: the zeros stay zeros
    assert float((out[:, 5:11, 5:11, 5:11] - c).abs().max()) <= tolerance  # 3 voxels (the radius) inside
    assert float(out[0, 2, 8, 8]) < c  # the rim is blurred with the zeros around it
    leaked = A.gaussian_blur(cube, 1.0, keep_background=False)
    assert float(leaked[0, 1, 8, 8]) > 0


def test_low_resolution_factor_one_is_identity_and_labels_are_untouched():
    image, label = _sample()
    assert A.low_resolution(image, 1.0) is image
    out = A.low_resolution(image, [1.0, 1.7])
    assert out.shape == image.shape and out.dtype == image.dtype
    assert torch.equal(out[0], image[0]) and not torch.equal(out[1], image[1])
    record = A.LowResolutionParams(factor=(2.0, 1.5))
    _, lab = record.apply(image, label)
    assert lab is label
    image2d, _ = _sample((20, 18))
    assert A.low_resolution(image2d, 1.6).shape == image2d.shape


def test_low_resolution_of_a_linear_ramp_is_the_ramp_shifted_by_half_a_voxel():
    """nearest-exact keeps voxel 2j+1 of each pair, linear up-sampling puts it at 2j+0.5 + 0.5: inside,
    the output is the ramp at x + 0.5 on every axis; at the first voxel the clamped interpolation reads one
    voxel on, so everywhere it stays within the sum of the gradient's magnitudes."""
    n = 16
    u = torch.arange(n, dtype=torch.float32)
    x, y, z = torch.meshgrid(u, u, u, indexing="ij")
    gradient = (3.0, -2.0, 1.5)

    def ramp(x, y, z):
        return gradient[0] * x + gradient[1] * y + gradient[2] * z + 40.0  # > 0: all foreground

    image = ramp(x, y, z)[None]
    out = A.low_resolution(image, 2.0)
    inner = (slice(1, n - 1),) * 3
    # one linear interpolation: a weighted sum of 8 float32 values of magnitude <= max|ramp|
    tolerance = 8 * torch.finfo(torch.float32).eps * float(image.abs().max())
    shifted = ramp(x + 0.5, y + 0.5, z + 0.5)
    assert float((out[0][inner] - shifted[inner]).abs().max()) <= tolerance
    assert float((out[0] - image[0]).abs().max()) <= sum(abs(g) for g in gradient) + tolerance


def test_thick_slices_keep_a_ramp_along_the_slab_axis_and_what_does_not_vary_along_it():
    """Area averaging over slabs of 2 voxels, then linear interpolation back (align_corners=False): a linear
    ramp along the slab axis comes back as itself inside (slab j holds the ramp at 2j + 0.5, which lands at
    voxel 2j + 0.5); the first and last voxels read the clamped edge slab, half a voxel's step off. A channel
    that does not vary along its slab axis comes back unchanged. Other channels are untouched."""
    n = 16
    u = torch.arange(n, dtype=torch.float32)
    x, y, z = torch.meshgrid(u, u, u, indexing="ij")
    ramp_z = 3.0 * z + 2.0 * x + 40.0  # varies along axis 2 (and 0)
    image = torch.stack([ramp_z, ramp_z, 2.0 * y + 10.0])
    out = A.thick_slices(image, [2.0, 1.0, 2.0], [2, 2, 0])
    assert out.shape == image.shape and out.dtype == image.dtype
    # a weighted sum of a few float32 values of magnitude <= max|image|
    tolerance = 8 * torch.finfo(torch.float32).eps * float(image.abs().max())
    inner = (slice(None), slice(None), slice(1, n - 1))
    assert float((out[0][inner] - image[0][inner]).abs().max()) <= tolerance
    assert float((out[0][..., 0] - image[0][..., 0]).abs().max()) == pytest.approx(1.5, abs=tolerance)
    assert torch.equal(out[1], image[1])  # thickness 1: unchanged
    assert float((out[2] - image[2]).abs().max()) <= tolerance  # channel 2 does not vary along axis 0
    assert A.thick_slices(image, 1.0, 0) is image


def test_thick_slices_spread_a_thin_bright_slice_and_keep_the_background():
    image = torch.full((1, 12, 12, 12), 1.0)
    image[0, :, :, 6] = 5.0
    image[0, 0] = 0.0  # background: one face
    out = A.thick_slices(image, 3.0, 2)
    profile = out[0, 6, 6]
    assert float(profile.max()) < 5.0 and float(profile[6]) > 1.0  # blurred along z only
    assert float(profile[5]) > 1.0 or float(profile[7]) > 1.0
    assert torch.equal(out[0, 0], torch.zeros(12, 12))  # the background stays 0
    torch.testing.assert_close(out[0, 1:, :, 0], image[0, 1:, :, 0])  # far from the slice: unchanged


@pytest.mark.parametrize(
    ("thickness", "axis", "fragment"),
    [
        (0.5, 0, "slice thickness must be finite and >= 1"),
        (2.0, 3, "slice axis must be one of 0..2"),
        (2.0, [0, 1, 2], "slice axis must be one of 0..2"),
        (float("nan"), 0, "finite"),
    ],
)
def test_thick_slices_refuse_bad_settings(thickness, axis, fragment):
    image, _ = _sample()
    with pytest.raises(InputError, match=fragment.replace(".", r"\.")):
        A.thick_slices(image, thickness, axis)


def test_contrast_known_answer_mean_and_range():
    image = torch.zeros(1, 4, 4, 4)
    image[0, :2] = 1.0
    image[0, 2:] = 3.0
    torch.testing.assert_close(A.contrast(image, 0.5)[0, :2], torch.full((2, 4, 4), 1.5), rtol=0, atol=0)
    torch.testing.assert_close(A.contrast(image, 0.5)[0, 2:], torch.full((2, 4, 4), 2.5), rtol=0, atol=0)
    assert torch.equal(A.contrast(image, 2.0), image)  # 0 and 4 clipped back to the range [1, 3]
    sample, _ = _sample()
    assert A.contrast(sample, 1.0) is sample
    fg = (sample != 0).any(0)
    for factor in ([0.75, 0.9], [1.25, 1.1]):
        out = A.contrast(sample, factor)
        assert out.shape == sample.shape and out.dtype == sample.dtype
        assert torch.all(out[:, ~fg] == 0)
        for ch in range(2):
            inside, before = out[ch][fg], sample[ch][fg]
            assert before.min() <= inside.min() and inside.max() <= before.max()
            if factor[ch] < 1:  # nothing clipped: the mean is kept up to 3 roundings per voxel
                mean = float(before.double().mean())
                tolerance = 3 * U32 * (float(before.abs().max()) + abs(mean)) * 1.01
                assert abs(float(inside.double().mean()) - mean) <= tolerance
            else:  # stretched: the extremes saturate at the original min and max
                assert inside.max() == before.max() and inside.min() == before.min()


def test_brightness_is_an_exact_product_and_inverted_gamma_mirrors_gamma():
    image, label = _sample()
    out, lab, record = A.RandomBrightness((0.75, 1.25), p=1.0)(image, label, _gen(0))
    assert record["op"] == "intensity" and record["shift"] == [0.0, 0.0] and lab is label
    for ch, scale in enumerate(record["scale"]):
        assert 0.75 <= scale <= 1.25
        assert torch.equal(out[ch], image[ch] * torch.tensor(scale, dtype=torch.float32))
    for g in (0.7, 1.4, [0.8, 1.3]):
        inverted = A.gamma(image, g, invert=True)
        assert torch.equal(inverted, -A.gamma(-image, g))  # the same float operations, negated
        assert not torch.equal(inverted, A.gamma(image, g))
    assert torch.equal(A.gamma(image, 1.0, invert=True), image)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda im: A.gaussian_blur(im, -0.5), "blur sigma"),
        (lambda im: A.gaussian_blur(im, float("nan")), "blur sigma"),
        (lambda im: A.gaussian_blur(im, [1.0, 1.0, 1.0]), "per channel"),
        (lambda im: A.low_resolution(im, 0.5), "low-resolution factor"),
        (lambda im: A.low_resolution(im, float("inf")), "low-resolution factor"),
        (lambda im: A.contrast(im, 0.0), "contrast factor"),
        (lambda im: A.contrast(im, [1.2, -1.0]), "contrast factor"),
        (lambda im: A.contrast(im, 1.2, torch.ones(3, 3, 3, dtype=torch.bool)), "mask shape"),
        (lambda im: A.RandomBlur(sigma_range=(-1.0, 1.0)), "sigma_range"),
        (lambda im: A.RandomBlur(p=1.5), "probability"),
        (lambda im: A.RandomLowResolution(factor_range=(0.5, 2.0)), "factor_range"),
        (lambda im: A.RandomLowResolution(p_per_channel=-0.1), "p_per_channel"),
        (lambda im: A.RandomContrast(factor_range=(0.0, 1.0)), "factor_range"),
        (lambda im: A.RandomContrast(factor_range=(1.25, 0.75)), "low <= high"),
        (lambda im: A.RandomBrightness(scale_range=(1.0,)), "two numbers"),
    ],
)
def test_bad_issue_22_parameters_raise_one_line_input_error(call, match):
    image, _ = _sample()
    with pytest.raises(InputError, match=match) as info:
        call(image)
    assert "\n" not in str(info.value)


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
