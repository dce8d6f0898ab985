"""Location in BraTS (SRI24) space: the rules on a small synthetic atlas, then the bundled atlas."""

import numpy as np
import pytest

from medseg3d.clinical import location as loc
from medseg3d.errors import InputError
from medseg3d.io import Volume
from medseg3d.labels import get_scheme
from medseg3d.raw.template import BRATS_AFFINE, BRATS_SHAPE


def _toy_atlas(n=40, midline=19.5):
    """Lobe 1 (frontal) on the low-i half, lobe 2 (temporal) on the high-i half; thalamus (deep 1) in a small
    cube; the ependymal flag on a plane; the cortex flag on the top slices."""
    packed = np.zeros((n, n, n), np.uint8)
    packed[: int(midline + 0.5)] = 1
    packed[int(midline + 0.5) :] = 2
    packed[10:14, 10:14, 10:14] |= 1 << 3
    packed[:, 30, :] |= 64
    packed[:, :, 36:] |= 128
    return packed


def test_shares_sides_and_lobes_follow_the_voxels():
    packed = _toy_atlas()
    mask = np.zeros(packed.shape, bool)
    mask[5:15, 5:15, 5:15] = True  # 1000 voxels, all with i < 19.5: the right side, lobe 1
    out = loc.describe_mask(mask, packed, midline_i=19.5)
    assert out["volume_ml"] == 1.0 and out["hemisphere"] == "right"
    assert out["side_share"] == {"right": 1.0, "left": 0.0} and not out["crosses_midline"]
    assert (
        out["lobes"]["frontal"] == 1.0
        and out["main_lobe"] == "frontal"
        and out["lobes_involved"] == ["frontal"]
    )
    # the thalamus cube overlaps the mask in 4 x 4 x 4 voxels = 0.064 ml: below the 0.1 ml to count
    assert out["deep_ml"]["thalamus"] == 0.064 and out["deep_structures"] == []
    assert not out["ventricles"]["contact"] and not out["cortex"]["contact"]


def test_crossing_needs_volume_beyond_the_margin():
    packed = _toy_atlas()
    mask = np.zeros(packed.shape, bool)
    mask[4:20, 0:20, 0:20] = True  # i 4..19: all right of 19.5
    edge = int(19.5 + loc.MIDLINE_MARGIN_MM)  # i = 24: 4.5 mm beyond the plane, inside the margin
    mask[20 : edge + 1, 0:20, 0:5] = True
    out = loc.describe_mask(mask, packed, midline_i=19.5)
    assert out["beyond_midline_ml"] == 0.0 and not out["crosses_midline"]
    mask[edge + 1, 0:20, 0:5] = True  # 100 voxels 5.5 mm beyond: 0.1 ml, the threshold
    out = loc.describe_mask(mask, packed, midline_i=19.5)
    assert out["beyond_midline_ml"] == pytest.approx(loc.CROSSING_ML) and out["crosses_midline"]
    assert out["hemisphere"] == "right"  # still mostly on the right


def test_bilateral_when_the_smaller_side_holds_a_fifth():
    packed = _toy_atlas()
    mask = np.zeros(packed.shape, bool)
    mask[10:30, 0:10, 0:10] = True  # i 10..29 about 19.5: half and half
    out = loc.describe_mask(mask, packed, midline_i=19.5)
    assert out["hemisphere"] == "bilateral" and out["side_share"] == {"right": 0.5, "left": 0.5}
    assert out["lobes"]["frontal"] == out["lobes"]["temporal"] == 0.5


def test_contact_with_ventricles_and_cortex():
    packed = _toy_atlas()
    mask = np.zeros(packed.shape, bool)
    mask[0:10, 28:32, 30:40] = (
        True  # crosses the ependymal plane j = 30 and reaches the cortex slices k >= 36
    )
    out = loc.describe_mask(mask, packed, midline_i=19.5)
    assert out["ventricles"]["ml"] == 0.1 and out["ventricles"]["contact"]
    assert out["cortex"]["ml"] == 0.16 and out["cortex"]["contact"]


def test_a_crop_is_placed_by_its_origin():
    packed = _toy_atlas()
    mask = np.ones((5, 5, 5), bool)
    right = loc.describe_mask(mask, packed, origin=(0, 0, 0), midline_i=19.5)
    left = loc.describe_mask(mask, packed, origin=(30, 0, 0), midline_i=19.5)
    assert right["hemisphere"] == "right" and left["hemisphere"] == "left"
    assert left["main_lobe"] == "temporal"


def test_empty_mask_says_nothing():
    assert loc.describe_mask(np.zeros((4, 4, 4), bool), _toy_atlas())["hemisphere"] is None
    assert loc.location_sentence({"volume_ml": 0.0, "hemisphere": None}) == "No tumour in this region."


# --- the bundled atlas --------------------------------------------------------------------------------------


def _ball(centre, radius):
    grid = np.indices(BRATS_SHAPE, sparse=True)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2


def _deep_inside(packed, lobe, left: bool, midline: float):
    """A voxel of ``lobe`` at least 10 mm inside it, on the asked side (found in the atlas, not written
    down)."""
    from scipy import ndimage

    coarse = packed[::2, ::2, ::2]  # 2 mm: the search costs an eighth
    inside = (coarse & 7) == lobe + 1
    i = 2 * np.arange(coarse.shape[0])[:, None, None]
    inside &= (i > midline + 15) if left else (i < midline - 15)
    depth = ndimage.distance_transform_edt(inside, sampling=2.0)
    return tuple(2 * int(v) for v in np.unravel_index(int(depth.argmax()), depth.shape)), float(depth.max())


@pytest.mark.parametrize("lobe", range(4))
def test_balls_in_the_bundled_atlas_are_located_on_their_side_and_lobe(lobe):
    packed, info = loc.load_location_atlas()
    midline = info["midline_i"]
    for left in (True, False):
        centre, depth = _deep_inside(packed, lobe, left, midline)
        assert depth >= 10, "each lobe is large on both sides"
        labels = np.where(_ball(centre, 8), 2, 0).astype(np.uint8)
        out = loc.case_location(labels, get_scheme("brats"))
        wt = out["regions"]["WT"]
        assert out["available"] and wt["hemisphere"] == ("left" if left else "right")
        assert wt["main_lobe"] == loc.LOBES[lobe] and wt["lobes"][loc.LOBES[lobe]] == 1.0
        assert not wt["crosses_midline"] and len(wt["lesions"]) == 1
        assert out["regions"]["ET"]["volume_ml"] == 0.0
        side = "Left" if left else "Right"
        assert loc.location_sentence(wt).startswith(f"{side} {loc.LOBES[lobe]} lobe (100%)")


def test_a_ball_on_the_midline_crosses_it_and_touches_the_corpus_callosum():
    packed, info = loc.load_location_atlas()
    cc = np.argwhere(((packed >> 3) & 7) == loc.DEEP.index("corpus callosum") + 1)
    centre = (round(info["midline_i"]), *np.median(cc[:, 1:], axis=0).astype(int))
    labels = np.where(_ball(centre, 12), 4, 0).astype(np.uint8)
    et = loc.case_location(labels, get_scheme("brats"))["regions"]["ET"]
    assert et["hemisphere"] == "bilateral" and et["crosses_midline"]
    assert abs(et["side_share"]["left"] - 0.5) < 0.05
    assert "corpus callosum" in et["deep_structures"] and et["ventricles"]["contact"]
    assert "crosses the midline" in loc.location_sentence(et)


def test_the_atlas_holds_every_structure_on_both_sides():
    packed, info = loc.load_location_atlas()
    assert packed.shape == BRATS_SHAPE and info["midline_i"] == loc.MIDLINE_I
    i = np.arange(BRATS_SHAPE[0])[:, None, None]
    for code in range(1, len(loc.LOBES) + 1):
        lobe = (packed & 7) == code
        assert (lobe & (i < loc.MIDLINE_I)).sum() > 10_000 and (lobe & (i > loc.MIDLINE_I)).sum() > 10_000
    for code in range(1, len(loc.DEEP) + 1):
        assert (((packed >> 3) & 7) == code).sum() > 5_000
    assert ((packed & 64) > 0).sum() > 50_000 and ((packed & 128) > 0).sum() > 500_000


def test_labels_reach_the_atlas_grid_directly_or_through_the_alignment():
    labels = np.zeros(BRATS_SHAPE, np.uint8)
    labels[100:110, 120:130, 60:70] = 2
    on_grid = Volume(labels, BRATS_AFFINE)
    assert loc.on_atlas_grid(on_grid) is labels
    flipped = Volume(
        labels[::-1].copy(),
        BRATS_AFFINE @ np.array([[-1, 0, 0, 239], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]),
    )
    assert loc.on_atlas_grid(flipped) is None  # the same space, another grid, and no map given
    back = loc.on_atlas_grid(flipped, np.eye(4))
    np.testing.assert_array_equal(back, labels)
    missing = loc.case_location(None, get_scheme("brats"))
    assert missing["available"] is False and "--preprocess full" in missing["reason"]


def test_labels_of_another_shape_are_refused():
    with pytest.raises(InputError, match="BraTS grid"):
        loc.case_location(np.zeros((10, 10, 10), np.uint8), get_scheme("brats"))


def test_resampling_only_the_tumour_box_equals_resampling_the_whole_grid():
    from medseg3d.raw.geometry import resample

    rng = np.random.default_rng(3)
    labels = np.zeros((60, 50, 20), np.uint8)
    labels[20:35, 10:30, 5:12] = 2
    labels[25:30, 15:20, 7:10] = 4
    labels[rng.random(labels.shape) > 0.995] = 1  # scattered voxels widen the box
    angle = np.deg2rad(12)  # an oblique, anisotropic native grid placed inside the atlas' field of view
    affine = np.array(
        [
            [np.cos(angle) * 0.9, -np.sin(angle) * 0.9, 0, -60],
            [np.sin(angle) * 0.9, np.cos(angle) * 0.9, 0, 120],
            [0, 0, 4.0, 30],
            [0, 0, 0, 1],
        ]
    )
    native = Volume(labels, affine)
    to_atlas = np.eye(4)
    to_atlas[:3, 3] = (3.0, -2.0, 1.5)  # an alignment: a shift in LPS mm
    whole = resample(native, BRATS_SHAPE, BRATS_AFFINE, to_atlas, order=0, dtype=np.uint8)
    assert whole.any()
    np.testing.assert_array_equal(loc.on_atlas_grid(native, to_atlas), whole)
