"""Random transforms, compose and presets: deterministic per seed, logged, replayed, inverted."""

import pytest
import torch

from medseg3d import augment as A
from medseg3d.errors import InputError

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


# ------------------------------------------------------------------------------------------- issue #22

NEW_RANDOM = {
    "blur": lambda p, pc: A.RandomBlur((0.5, 1.0), p=p, p_per_channel=pc),
    "low_resolution": lambda p, pc: A.RandomLowResolution((1.0, 2.0), p=p, p_per_channel=pc),
    "thick_slices": lambda p, pc: A.RandomThickSlices((1.5, 2.75), p=p, p_per_channel=pc),
    "contrast": lambda p, pc: A.RandomContrast((0.75, 1.25), p=p),
    "intensity": lambda p, pc: A.RandomBrightness((0.75, 1.25), p=p),
    "gamma": lambda p, pc: A.RandomGamma((0.7, 1.5), p=p, invert=True),
}


@pytest.mark.parametrize("op", NEW_RANDOM)
def test_issue_22_random_transforms_draw_log_and_replay(op):
    image, label = _sample()
    regions = _regions(label)
    make = NEW_RANDOM[op]
    out, lab, params = make(1.0, 1.0)(image, label, _gen(1))
    assert params["op"] == op and not torch.equal(out, image)
    assert out.shape == image.shape and out.dtype == image.dtype and lab is label  # labels untouched
    again, _, same_params = make(1.0, 1.0)(image, label, _gen(1))
    assert same_params == params and torch.equal(again, out)
    replay, replay_lab = A.apply_params(image, label, [params.to_dict()])
    assert torch.equal(replay, out) and replay_lab is label
    other, _, other_params = make(1.0, 1.0)(image, label, _gen(2))
    assert other_params != params and not torch.equal(other, out)
    _, reg, _ = make(1.0, 1.0)(image, regions, _gen(1))
    assert reg is regions
    same, same_lab, none = make(0.0, 1.0)(image, label, _gen(1))
    assert none == {} and same is image and same_lab is label


def test_per_channel_draws_choose_channels_and_stay_in_their_ranges():
    image, _ = _sample(channels=4)
    chosen = set()
    for seed in range(20):
        _, _, blur = A.RandomBlur((0.5, 1.0), p=1.0, p_per_channel=0.5)(image, None, _gen(seed))
        _, _, low = A.RandomLowResolution((1.0, 2.0), p=1.0, p_per_channel=0.5)(image, None, _gen(seed))
        for record, field, identity, (lo, hi) in (
            (blur, "sigma", 0.0, (0.5, 1.0)),
            (low, "factor", 1.0, (1.0, 2.0)),
        ):
            if record:  # {} when no channel was chosen
                values = record[field]
                assert len(values) == 4 and any(v != identity for v in values)
                assert all(v == identity or lo <= v <= hi for v in values)
                chosen.add(tuple(v != identity for v in values))
    assert len(chosen) > 4  # different channel subsets
    _, _, none = A.RandomBlur(p=1.0, p_per_channel=0.0)(image, None, _gen(0))
    assert none == {}
    _, _, shared = A.RandomLowResolution(p=1.0, per_channel=False)(image, None, _gen(0))
    assert len(set(shared["factor"])) == 1 and len(shared["factor"]) == 4
    axes = set()
    for seed in range(20):
        _, _, thick = A.RandomThickSlices((1.5, 2.75), p=1.0, p_per_channel=1.0)(image, None, _gen(seed))
        assert all(1.5 <= t <= 2.75 for t in thick["thickness"]) and len(thick["axis"]) == 4
        axes.update(thick["axis"])
    assert axes == {0, 1, 2}  # every channel its own axis, all of them drawn
    with pytest.raises(InputError, match="thickness_range must be >= 1"):
        A.RandomThickSlices((0.5, 2.0))


def test_strong_preset_draws_every_op_of_its_recipe_within_its_ranges():
    """The table of build_augment's docstring: every op shows up over 60 seeds, inside its range."""
    image, label = _sample((12, 12, 12), channels=4)
    seen = set()
    for seed in range(60):
        _, _, applied = A.build_augment("strong")(image, label, _gen(seed))
        for record in applied:
            kind = record["op"]
            if kind == "rotate_scale":
                assert all(-30 <= a <= 30 for a in record["angles_deg"])
                assert all(0.7 <= s <= 1.4 for s in record["scale"]) and len(set(record["scale"])) == 1
                kind += "+scale" if record["scale"][0] != 1.0 else "+rotate"
            elif kind == "noise":
                assert 0 <= record["std"] <= 0.3
            elif kind == "blur":
                assert all(s == 0 or 0.5 <= s <= 1.0 for s in record["sigma"])
            elif kind == "intensity":
                assert record["shift"] == [0.0] * 4 and all(0.75 <= s <= 1.25 for s in record["scale"])
            elif kind == "contrast":
                assert all(0.75 <= f <= 1.25 for f in record["factor"])
            elif kind == "low_resolution":
                assert all(1.0 <= f <= 2.0 for f in record["factor"])
            elif kind == "gamma":
                assert all(0.7 <= g <= 1.5 for g in record["gamma"])
                kind += "+inverted" if record.get("invert") else ""
            seen.add(kind)
    assert seen == {
        "rotate_scale+scale",
        "rotate_scale+rotate",
        "noise",
        "blur",
        "intensity",
        "contrast",
        "low_resolution",
        "gamma",
        "gamma+inverted",
        "flip",
    }


def test_strong_thick_is_strong_with_thick_slices_after_the_low_resolution():
    strong = [type(t).__name__ for t in A.build_augment("strong").transforms]
    thick = [type(t).__name__ for t in A.build_augment("strong-thick").transforms]
    at = strong.index("RandomLowResolution") + 1
    assert thick == strong[:at] + ["RandomThickSlices"] + strong[at:]
    assert "strong-thick" in A.PRESETS
