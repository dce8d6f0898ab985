"""Random transforms, compose and presets: deterministic per seed, logged, replayed, inverted."""

import pytest
import torch

from medseg3d import augment as A

from .samples import gen as _gen
from .samples import regions as _regions
from .samples import sample as _sample

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
