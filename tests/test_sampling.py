"""PatchSampler: foreground over-sampling at the rate asked for, patches where they should be,
reproducible."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from medseg3d.errors import InputError
from medseg3d.sampling import PatchSampler

SHAPE = (40, 36, 30)
PATCH = (16, 16, 12)


def _case(case_id="c1", shape=SHAPE, points=((33, 5, 25),), values=(4,), channels=2):
    """A prepared case (duck-typed: case_id, image (C, X, Y, Z), label) with labelled single voxels."""
    rng = np.random.default_rng(0)
    label = np.zeros(shape, dtype=np.uint8)
    for p, v in zip(points, values):
        label[p] = v
    image = rng.standard_normal((channels, *shape)).astype(np.float32)
    return SimpleNamespace(case_id=case_id, image=image, label=label)


def _contains(box, point) -> bool:
    start, stop = box
    return all(a <= c < b for a, c, b in zip(start, point, stop))


def _uniform_hit_rate(sampler, case, point) -> float:
    """Exact probability that a uniformly placed patch holds ``point``: every centre of the volume is equally
    likely in that branch, so enumerate them (axis by axis, the box is a product of intervals)."""
    rate = 1.0
    for axis, (s, p) in enumerate(zip(case.image.shape[1:], sampler.patch)):
        hits = 0
        for c in range(s):
            a = c - p // 2
            a = min(max(a, 0), max(s - p, 0)) if s >= p else -((p - s) // 2)
            hits += a <= point[axis] < a + p
        rate *= hits / s
    return rate


@pytest.mark.parametrize("foreground_p", [0.0, 0.33, 0.5, 1.0])
def test_foreground_share_is_within_binomial_tolerance_of_foreground_p(foreground_p):
    case = _case()
    point = (33, 5, 25)
    sampler = PatchSampler(PATCH, foreground_p=foreground_p)
    rng = np.random.default_rng(123)
    n = 4000
    hits = sum(_contains(sampler.box_for(case, rng), point) for _ in range(n))
    # a foreground draw always holds the voxel (jitter <= patch/4 keeps it inside), a uniform one with rate q
    q = _uniform_hit_rate(sampler, case, point)
    expected = foreground_p + (1 - foreground_p) * q
    assert 0 < q < 0.2
    tolerance = 4 * math.sqrt(expected * (1 - expected) / n)  # 4 binomial standard deviations
    assert abs(hits / n - expected) <= tolerance, (hits / n, expected, tolerance)


def test_foreground_classes_are_chosen_uniformly_not_by_size():
    # class 2 covers a large slab, class 4 one voxel: foreground draws still go half to each class
    case = _case(points=((33, 5, 25),), values=(4,))
    case.label[:10, :10, :10] = 2
    sampler = PatchSampler(PATCH, foreground_p=1.0)
    rng = np.random.default_rng(7)
    n = 2000
    hits = sum(_contains(sampler.box_for(case, rng), (33, 5, 25)) for _ in range(n))
    # a class-2 draw cannot reach the class-4 voxel (over 23 voxels away along x, patch 16), so hits are class
    # 4
    assert abs(hits / n - 0.5) <= 4 * math.sqrt(0.25 / n)


@pytest.mark.parametrize("shape", [SHAPE, (12, 36, 30), (40, 16, 5)])
def test_patches_lie_inside_the_volume_or_centred_where_it_is_smaller(shape):
    case = _case(shape=shape, points=((shape[0] - 1, 0, shape[2] - 1),))
    sampler = PatchSampler(PATCH, foreground_p=0.5)
    rng = np.random.default_rng(1)
    for _ in range(300):
        start, stop = sampler.box_for(case, rng)
        assert tuple(b - a for a, b in zip(start, stop)) == PATCH
        for a, b, s, p in zip(start, stop, shape, PATCH):
            if s >= p:
                assert 0 <= a and b <= s
            else:  # the volume is smaller than the patch: centred, zero-padded on both sides
                assert a == -((p - s) // 2)
    image, label = sampler.sample(case, rng)
    assert image.shape == (2, *PATCH) and image.dtype == np.float32
    assert label.shape == PATCH and label.dtype == np.int64


def test_crop_cuts_the_box_and_pads_with_zeros():
    case = _case()
    sampler = PatchSampler(PATCH)
    box = ((-2, 0, 20), (14, 16, 32))
    image, label = sampler.crop(case, box)
    np.testing.assert_array_equal(image[:, 2:, :, :10], case.image[:, 0:14, 0:16, 20:30])
    assert not image[:, :2].any() and not image[:, :, :, 10:].any()
    np.testing.assert_array_equal(label[2:, :, :10], case.label[0:14, 0:16, 20:30])


def test_whole_crops_are_padded_to_the_size_multiple_and_centred():
    case = _case(shape=(37, 40, 29))
    start, stop = PatchSampler(None, size_multiple=8).box_for(case, np.random.default_rng(0))
    assert start == (-1, 0, -1) and stop == (39, 40, 31)


def test_same_seed_same_patches_and_independent_of_the_points_cache():
    cases = [_case("a"), _case("b", points=((3, 30, 2), (20, 20, 20)), values=(1, 2))]
    warm = PatchSampler(PATCH, foreground_p=0.5, max_points=1)
    warm.box_for(cases[1], np.random.default_rng(99))  # its cache of foreground points is filled already

    def draws(sampler, seed):
        rng = np.random.default_rng(seed)
        return [sampler.box_for(cases[i % 2], rng) for i in range(50)]

    fresh = draws(PatchSampler(PATCH, foreground_p=0.5, max_points=1), 5)
    assert draws(warm, 5) == fresh  # a resumed run (empty cache) draws what an uninterrupted one draws
    assert draws(PatchSampler(PATCH, foreground_p=0.5, max_points=1), 6) != fresh


def test_patch_must_be_voxel_counts():
    with pytest.raises(InputError, match="patch must be positive voxel counts"):
        PatchSampler([_case()], PATCH)  # the old signature took the cases first
    with pytest.raises(InputError, match="patch"):
        PatchSampler((16, 0, 16))
