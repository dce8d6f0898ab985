import numpy as np
import pytest
import torch

from medseg3d import augment as A
from medseg3d.augment import resample as R
from medseg3d.errors import InputError

PLANES_3D = A.PLANES[3]


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _sample(spatial=(12, 14, 10), channels=2, seed=0, values=(0, 1, 2, 4)):
    """Image with a zero background shell and a label map drawn from ``values``."""
    g = _gen(seed)
    image = torch.randn((channels, *spatial), generator=g)
    label = torch.tensor(values)[torch.randint(len(values), spatial, generator=g)]
    for axis in range(len(spatial)):
        image.narrow(axis + 1, 0, 2).zero_()
        label.narrow(axis, 0, 2).zero_()
    return image, label


def _regions(label):
    return torch.stack([label > 0, label >= 2, label == 4]).float()


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


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_resampling_paths_with_identity_matrix_are_identity(mode):
    image, _ = _sample()
    eye = np.eye(3)
    torch.testing.assert_close(R.resample_general(image, eye, mode), image, atol=1e-5, rtol=0)
    for c in range(3):
        torch.testing.assert_close(R.resample_separable(image, eye, c, mode), image, atol=1e-5, rtol=0)


@pytest.mark.parametrize("k", range(3))
@pytest.mark.parametrize("scale", [1.0, 1.17, 0.83])  # not 0.8: it puts voxels on exact nearest ties
def test_separable_path_matches_3d_grid_sample(k, scale):
    image, _ = _sample((13, 16, 11), channels=3)
    angles = [0.0, 0.0, 0.0]
    angles[k] = 37.0
    sampling = np.linalg.inv(R.linear_map(angles, scale, 3))
    c = R.separable_axis(sampling)
    assert c == 2 - k
    for mode in ("bilinear", "nearest"):
        fast = R.resample_separable(image, sampling, c, mode)
        slow = R.resample_general(image, sampling, mode)
        torch.testing.assert_close(fast, slow, atol=1e-4, rtol=0)
        assert fast.is_contiguous()


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


# ------------------------------------------------------------------------------------- random, compose


PIPELINES = ["none", "paper", "default", "strong"]


@pytest.mark.parametrize("name", PIPELINES)
@pytest.mark.parametrize("spatial", [(12, 14, 10), (20, 18)])
def test_pipelines_are_deterministic_and_keep_shapes(name, spatial):
    image, label = _sample(spatial)
    augment = A.build_augment(name)
    outputs = []
    for seed in range(6):
        i1, l1, p1 = augment(image, label, _gen(seed))
        i2, l2, p2 = augment(image, label, _gen(seed))
        assert torch.equal(i1, i2) and torch.equal(l1, l2) and p1 == p2
        assert i1.shape == image.shape and i1.dtype == image.dtype
        assert l1.shape == label.shape and l1.dtype == label.dtype
        assert set(l1.unique().tolist()) <= {0, 1, 2, 4}
        outputs.append(i1)
        # the logged parameters replay the same result
        i3, l3 = A.apply_params(image, label, p1)
        assert torch.equal(i3, i1) and torch.equal(l3, l1)
    distinct = {tuple(o.flatten()[:50].tolist()) for o in outputs}
    assert len(distinct) == 1 if name == "none" else len(distinct) > 1


@pytest.mark.parametrize("name", PIPELINES)
def test_pipelines_accept_region_masks_and_no_label(name):
    image, label = _sample()
    regions = _regions(label)
    _, reg, _ = A.build_augment(name)(image, regions, _gen(3))
    assert reg.shape == regions.shape and set(reg.unique().tolist()) <= {0.0, 1.0}
    out, lab, _ = A.build_augment(name)(image, None, _gen(3))
    assert lab is None and out.shape == image.shape


def test_paper_augment_draws_at_most_two_ops():
    image, label = _sample()
    kinds = set()
    for seed in range(20):
        _, _, applied = A.PaperAugment()(image, label, _gen(seed))
        assert len(applied) <= 2
        for p in applied:
            kinds.add(p["op"])
            if p["op"] == "flip":
                assert len(p["axes"]) == 1
            else:
                assert all(0 <= a <= 360 for a in p["angles_deg"]) and len(p["planes"]) in (1, 2)
    assert kinds == {"flip", "rotate_scale"}


@pytest.mark.parametrize(
    "make",
    [
        lambda p: A.RandomFlip(p=p),
        lambda p: A.RandomRotation(max_angle=30, p=p),
        lambda p: A.RandomRotation(p=p, plane="all"),
        lambda p: A.RandomScale((0.85, 1.15), p=p),
        lambda p: A.RandomScale((0.85, 1.15), p=p, isotropic=False),
        lambda p: A.RandomRotateScale(max_angle=20, p_rotation=p, scale_range=(0.9, 1.1), p_scale=p),
        lambda p: A.RandomIntensity(p=p),
        lambda p: A.RandomGamma((0.7, 1.5), p=p),
        lambda p: A.RandomNoise((0.05, 0.1), p=p),
    ],
)
def test_random_transforms_log_what_they_apply(make):
    image, label = _sample()
    out, lab, params = make(1.0)(image, label, _gen(1))
    assert params and params["op"] in {"flip", "rotate_scale", "intensity", "gamma", "noise"}
    assert not torch.equal(out, image)
    replay, replay_lab = A.apply_params(image, label, params)
    assert torch.equal(replay, out) and torch.equal(replay_lab, lab)
    if params["op"] != "flip":  # flipping every axis with p=1 draws nothing
        other, _, other_params = make(1.0)(image, label, _gen(2))
        assert other_params != params and not torch.equal(other, out)
    same, same_lab, none = make(0.0)(image, label, _gen(1))
    assert none == {} and same is image and same_lab is label


def test_rotation_ranges():
    image, _ = _sample()
    for seed in range(10):
        _, _, p = A.RandomRotation(max_angle=20, p=1.0)(image, None, _gen(seed))
        assert len(p["angles_deg"]) == 1 and abs(p["angles_deg"][0]) <= 20
        _, _, p = A.RandomScale((0.85, 1.15), p=1.0)(image, None, _gen(seed))
        assert 0.85 <= p["scale"][0] <= 1.15 and len(set(p["scale"])) == 1


def test_invert_geometry_undoes_flips_and_quarter_turns():
    image, label = _sample((10, 10, 10))
    applied = [
        {"op": "flip", "axes": [1]},
        {"op": "rotate_scale", "matrix": A.rotation_matrix([0, 90, 0], 3).tolist(), "scale": 1.0},
        {"op": "gamma", "gamma": [1.2, 0.9]},
    ]
    _, lab = A.apply_params(image, label, applied)
    inverse = A.invert_geometry(applied)
    assert [p["op"] for p in inverse] == ["rotate_scale", "flip"]
    _, back = A.apply_params(image, lab, inverse)
    assert torch.equal(back, label)


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


def test_invert_geometry_undoes_rotation_and_scaling_inside_the_volume():
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, 25)] * 3, indexing="ij"))
    blob = torch.exp(-2 * (grid**2).sum(0))[None]  # smooth, so the blur of three resamplings stays small
    image, applied = blob, []
    for transform in (A.RandomRotation(max_angle=25, p=1.0), A.RandomScale((1.1, 1.2), p=1.0)):
        image, _, params = transform(image, None, _gen(4))
        applied.append(params)
    back, _ = A.apply_params(image, None, A.invert_geometry(applied))
    inner = (slice(None), *[slice(6, 19)] * 3)
    torch.testing.assert_close(back[inner], blob[inner], atol=0.02, rtol=0)
