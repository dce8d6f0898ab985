"""Typed parameter records: logged as a dict, replayed exactly, inverted (geometric ops)."""

import json

import numpy as np
import pytest
import torch

from medseg3d import augment as A
from medseg3d.errors import InputError

RECORDS = [
    A.FlipParams(axes=(0, 2)),
    A.RotateScaleParams(
        matrix=A.rotation_matrix([0.0, 25.0, 0.0], 3),
        scale=(1.1, 1.1, 1.1),
        planes=((0, 2),),
        angles_deg=(25.0,),
    ),
    A.RotateScaleParams(matrix=A.rotation_matrix([10.0, -20.0, 35.0], 3), scale=0.9, label_order=1),
    A.IntensityParams(scale=(1.1, 0.9), shift=(0.1, -0.2)),
    A.GammaParams(gamma=(0.8, 1.3)),
    A.NoiseParams(std=0.05, seed=123),
    # issue #22
    A.GammaParams(gamma=(0.8, 1.3), invert=True),
    A.BlurParams(sigma=(0.7, 0.0)),
    A.BlurParams(sigma=1.0),
    A.LowResolutionParams(factor=(1.0, 1.8)),
    A.LowResolutionParams(factor=2.0),
    A.ContrastParams(factor=(0.8, 1.2)),
]


def _sample():
    g = torch.Generator().manual_seed(0)
    image = torch.randn((2, 12, 14, 10), generator=g)
    label = torch.tensor([0, 1, 2, 4])[torch.randint(4, (12, 14, 10), generator=g)]
    image[:, :2] = 0
    return image, label


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.op)
def test_record_logs_as_json_and_replays_identically_from_the_log(record):
    image, label = _sample()
    logged = json.loads(json.dumps(record.to_dict()))
    assert logged["op"] == record.op and logged == record and dict(record) == logged
    back = A.params_from_dict(logged)
    assert type(back) is type(record) and back == record
    out, lab = record.apply(image, label)
    replay, replay_lab = A.apply_params(image, label, [logged])
    assert torch.equal(replay, out) and torch.equal(replay_lab, lab)


def test_records_are_immutable_and_read_like_the_logged_dict():
    record = A.RotateScaleParams(matrix=np.eye(3), scale=[1.0, 1.2, 1.0], planes=[], angles_deg=[])
    assert record["scale"] == [1.0, 1.2, 1.0] and record.matrix == (
        (1.0, 0.0, 0.0),
        (0.0, 1.0, 0.0),
        (0.0, 0.0, 1.0),
    )
    assert "planes" in record and record.get("missing") is None
    with pytest.raises(AttributeError):
        record.scale = 2.0
    inverse = record.inverse()  # planes/angles of an inverse are not recorded, so the log omits them
    assert set(inverse) == {"op", "matrix", "scale", "order", "label_order"}


def test_random_transforms_return_records():
    image, label = _sample()
    _, _, applied = A.build_augment("strong")(image, label, torch.Generator().manual_seed(5))
    assert applied and all(isinstance(p, A.AugmentParams) for p in applied)
    json.dumps([p.to_dict() for p in applied])  # the log of a whole pipeline is JSON


def test_flip_inverse_is_exact():
    image, label = _sample()
    record = A.FlipParams(axes=(1, 2))
    out, lab = record.apply(image, label)
    back, back_lab = record.inverse().apply(out, lab)
    assert torch.equal(back, image) and torch.equal(back_lab, label)


@pytest.mark.parametrize(
    "angles, scale",
    [([0.0, 0.0, 20.0], 1.1), ([0.0, 33.0, 0.0], [0.9, 1.0, 1.15]), ([12.0, -25.0, 40.0], 0.95)],
)
def test_rotation_scale_inverse_is_exact_on_a_linear_ramp_inside_the_volume(angles, scale):
    """Linear interpolation reproduces a linear function exactly, so forward then inverse returns the ramp
    up to float32 rounding wherever both resamplings sampled inside the volume."""
    n = 25
    u = torch.arange(n, dtype=torch.float32) - (n - 1) / 2
    x, y, z = torch.meshgrid(u, u, u, indexing="ij")
    ramp = (3.0 * x - 2.0 * y + 1.5 * z + 40.0)[None]
    record = A.RotateScaleParams(matrix=A.rotation_matrix(angles, 3), scale=scale)
    out, _ = record.apply(ramp, None)
    back, _ = A.apply_params(out, None, A.invert_geometry([record]))
    # Forward output is exact within radius s*(12 - sqrt(3)) of the centre (its sample and the 8 neighbours
    # inside); the inverse at radius r samples the forward output at <= s*r, so needs s*r + sqrt(3) below it.
    s_max = float(np.max(scale))
    s_min = float(np.min(scale))
    radius = (s_min * ((n - 1) / 2 - 3**0.5) - 3**0.5) / s_max
    inside = (x**2 + y**2 + z**2).sqrt() <= radius
    assert int(inside.sum()) > 1000
    # two resamplings, each a weighted sum of 8 float32 values of magnitude <= max|ramp|
    tolerance = 2 * 8 * torch.finfo(torch.float32).eps * float(ramp.abs().max())
    err = (back[0] - ramp[0])[inside].abs().max()
    assert float(err) <= tolerance


def test_intensity_ops_have_no_inverse_and_are_dropped_from_the_geometry():
    records = [A.GammaParams(gamma=(1.2,)), A.FlipParams(axes=(0,)), A.NoiseParams(std=0.1, seed=1)]
    assert A.invert_geometry(records) == [A.FlipParams(axes=(0,))]
    with pytest.raises(InputError, match="no spatial inverse"):
        records[0].inverse()


def test_bad_logs_raise_one_line_input_error():
    with pytest.raises(InputError, match="unknown augmentation op"):
        A.params_from_dict({"op": "warp"})
    with pytest.raises(InputError, match="incomplete") as info:
        A.params_from_dict({"op": "noise", "std": 0.1})
    assert "\n" not in str(info.value)
    assert A.params_from_dict({}) is None


def test_issue_22_records_are_dropped_from_the_geometry_and_listed_in_the_error():
    records = [
        A.BlurParams(sigma=(0.5, 1.0)),
        A.FlipParams(axes=(2,)),
        A.LowResolutionParams(factor=(1.5, 1.0)),
        A.ContrastParams(factor=(0.9, 1.1)),
        A.GammaParams(gamma=(1.2, 0.8), invert=True),
    ]
    assert A.invert_geometry(records) == [A.FlipParams(axes=(2,))]
    for record in records[2:]:
        with pytest.raises(InputError, match="no spatial inverse"):
            record.inverse()
    with pytest.raises(InputError) as info:
        A.params_from_dict({"op": "warp"})
    for op in ("flip", "rotate_scale", "intensity", "gamma", "noise", "blur", "low_resolution", "contrast"):
        assert op in str(info.value)
    with pytest.raises(InputError, match="incomplete"):
        A.params_from_dict({"op": "blur"})


def test_gamma_logs_as_before_unless_inverted():
    assert A.GammaParams(gamma=(0.8,)).to_dict() == {"op": "gamma", "gamma": [0.8]}
    assert A.GammaParams(gamma=(0.8,), invert=True).to_dict() == {
        "op": "gamma",
        "gamma": [0.8],
        "invert": True,
    }


def test_bad_logged_values_raise_one_line_input_error_when_replayed():
    image, label = _sample()
    for logged, match in (
        ({"op": "blur", "sigma": [-1.0, 0.5]}, "blur sigma"),
        ({"op": "low_resolution", "factor": [0.5, 1.0]}, "low-resolution factor"),
        ({"op": "contrast", "factor": [1.0, 1.0, 1.0]}, "per channel"),
    ):
        with pytest.raises(InputError, match=match) as info:
            A.apply_params(image, label, [logged])
        assert "\n" not in str(info.value)
