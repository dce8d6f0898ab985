"""RANO diameters: known answers on boxes and ellipses, anisotropic and rotated grids, empty and tiny
masks."""

import numpy as np
import pytest

from medseg3d.clinical.diameters import (
    MEASURABLE_MM,
    SLICE_RULES,
    case_diameters,
    label_lesions,
    lesion_diameters,
    region_diameters,
    slice_axis,
)
from medseg3d.errors import InputError
from medseg3d.labels import get_scheme


def _affine(spacing, rotation=None, offset=(0.0, 0.0, 0.0)):
    a = np.eye(4)
    a[:3, :3] = (np.eye(3) if rotation is None else np.asarray(rotation)) @ np.diag(spacing)
    a[:3, 3] = offset
    return a


def _rot(axis, degrees):
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def _box(shape, lo, hi):
    m = np.zeros(shape, dtype=bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return m


def _rectangle_answers(a, b):
    """Longest segment of an a x b rectangle (its diagonal) and its longest chord perpendicular to it."""
    long_side, short_side = max(a, b), min(a, b)
    diagonal = np.hypot(a, b)
    return diagonal, short_side * diagonal / long_side


SPACING = (0.5, 2.0, 3.0)
# the chord is sampled every quarter of the smallest in-plane pixel side, one step of error at each end
CHORD_TOL = 2 * min(SPACING[:2]) / 4 + 1e-6


@pytest.mark.parametrize("rule", SLICE_RULES)
def test_box_at_anisotropic_spacing_gives_its_exact_diameters(rule):
    m = _box((40, 30, 12), (5, 10, 2), (25, 20, 6))  # 20 x 10 x 4 voxels = 10 x 20 x 12 mm
    d = lesion_diameters(m, _affine(SPACING), rule=rule)
    axial, perpendicular = _rectangle_answers(20 * 0.5, 10 * 2.0)
    assert d["slice_axis"] == 2 and d["tilt_degrees"] == 0.0
    assert d["axial_mm"] == pytest.approx(axial, abs=0.01)
    assert d["perpendicular_mm"] == pytest.approx(perpendicular, abs=CHORD_TOL)
    assert d["product_mm2"] == pytest.approx(d["axial_mm"] * d["perpendicular_mm"], abs=0.1)
    assert d["longest_3d_mm"] == pytest.approx(np.sqrt(10.0**2 + 20.0**2 + 12.0**2), abs=0.01)
    assert d["measurable"] is True
    assert 2 <= d["slice"] < 6
    ends = np.array(d["axial_ends_voxel"])
    assert np.linalg.norm((ends[0] - ends[1]) * SPACING) == pytest.approx(axial, abs=0.01)


def test_in_plane_rotation_and_translation_change_nothing():
    m = _box((40, 30, 12), (5, 10, 2), (25, 20, 6))
    straight = lesion_diameters(m, _affine(SPACING))
    turned = lesion_diameters(m, _affine(SPACING, _rot(2, 33.0), offset=(-90.0, 12.0, 40.0)))
    for key in ("axial_mm", "longest_3d_mm", "slice_axis", "slice"):
        assert turned[key] == pytest.approx(straight[key], abs=0.02)
    assert turned["perpendicular_mm"] == pytest.approx(straight["perpendicular_mm"], abs=CHORD_TOL)


def test_coronal_acquisition_is_measured_on_the_axis_closest_to_superior():
    # voxel axis 1 points superior once the grid is turned 90 degrees about x: axial slices are along axis 1
    m = _box((30, 12, 40), (5, 2, 10), (15, 6, 30))  # 10 x 4 x 20 voxels
    spacing = (1.0, 3.0, 1.0)
    d = lesion_diameters(m, _affine(spacing, _rot(0, 90.0)))
    axial, perpendicular = _rectangle_answers(10.0, 20.0)
    assert d["slice_axis"] == 1 and d["tilt_degrees"] == pytest.approx(0.0, abs=1e-6)
    assert d["axial_mm"] == pytest.approx(axial, abs=0.01)
    assert d["perpendicular_mm"] == pytest.approx(perpendicular, abs=2 * 1.0 / 4 + 1e-6)


def test_tilted_grid_reports_its_tilt():
    axis, tilt = slice_axis(_affine((1, 1, 1), _rot(0, 20.0)))
    assert axis == 2 and tilt == pytest.approx(20.0, abs=1e-6)


def test_ellipse_diameters_are_its_axes_within_a_pixel():
    x, y = np.mgrid[:120, :120]
    semi_a, semi_b = 40, 15  # pixels
    disc = ((x - 60) / semi_a) ** 2 + ((y - 60) / semi_b) ** 2 <= 1
    m = np.repeat(disc[:, :, None], 3, axis=2)
    spacing = (0.8, 0.8, 5.0)
    d = lesion_diameters(m, _affine(spacing))
    # the pixels' outer edges reach half a pixel beyond the sampled ellipse on each side
    assert d["axial_mm"] == pytest.approx((2 * semi_a + 1) * 0.8, abs=0.8)
    assert d["perpendicular_mm"] == pytest.approx((2 * semi_b + 1) * 0.8, abs=0.8)
    assert d["perpendicular_mm"] <= d["axial_mm"]


def test_empty_mask_gives_zeros():
    d = lesion_diameters(np.zeros((5, 5, 5)), np.eye(4))
    assert d["axial_mm"] == 0.0 and d["product_mm2"] == 0.0 and d["slice"] is None and not d["measurable"]
    r = region_diameters(np.zeros((5, 5, 5)), np.eye(4))
    assert r["count"] == 0 and r["n_small"] == 0 and r["sum_products_mm2"] == 0.0 and not r["multifocal"]


def test_single_voxel_is_one_pixel_box_and_too_small_to_be_a_lesion():
    m = np.zeros((5, 5, 5), dtype=bool)
    m[2, 3, 1] = True
    d = lesion_diameters(m, _affine(SPACING))
    axial, perpendicular = _rectangle_answers(*SPACING[:2])
    assert d["axial_mm"] == pytest.approx(axial, abs=0.01)
    assert d["perpendicular_mm"] == pytest.approx(perpendicular, abs=CHORD_TOL)
    assert d["longest_3d_mm"] == pytest.approx(np.linalg.norm(SPACING), abs=0.01)
    assert d["slice"] == 1 and not d["measurable"]
    r = region_diameters(m, _affine(SPACING))
    assert r["count"] == 0 and r["n_small"] == 1


def test_multifocal_region_counts_lesions_and_their_largest_distance():
    shape = (80, 80, 20)
    m = np.zeros(shape, dtype=bool)
    boxes = [((5, 5, 5), (25, 25, 10)), ((50, 10, 5), (62, 22, 10)), ((40, 60, 8), (44, 64, 12))]
    for lo, hi in boxes:
        m |= _box(shape, lo, hi)
    r = region_diameters(m, _affine((1.0, 1.0, 2.0)))
    assert r["count"] == 3 and r["multifocal"]
    assert [le["volume_ml"] for le in r["lesions"]] == [4.0, 1.44, 0.128]  # largest first (2 mm slices)
    centres = [np.array([(a + b - 1) / 2 for a, b in zip(lo, hi)]) * (1, 1, 2) for lo, hi in boxes]
    far = max(np.linalg.norm(p - q) for p in centres for q in centres)
    assert r["max_distance_mm"] == pytest.approx(far, abs=0.1)
    # the 4 x 4 voxel lesion is below 10 mm: not measurable, left out of the sum of products
    assert [le["measurable"] for le in r["lesions"]] == [True, True, False]
    assert r["n_measurable"] == 2
    assert r["sum_products_mm2"] == pytest.approx(sum(le["product_mm2"] for le in r["lesions"][:2]), abs=0.1)
    assert all(le["perpendicular_mm"] >= MEASURABLE_MM for le in r["lesions"][:2])


def test_sum_of_products_keeps_the_five_largest():
    shape = (190, 30, 6)
    m = np.zeros(shape, dtype=bool)
    for k in range(6):  # six separate squares of 12..17 voxels
        side = 12 + k
        m |= _box(shape, (2 + 30 * k, 2, 1), (2 + 30 * k + side, 2 + side, 4))
    r = region_diameters(m, np.eye(4))
    products = sorted((le["product_mm2"] for le in r["lesions"]), reverse=True)
    assert r["n_measurable"] == 6
    assert r["sum_products_mm2"] == pytest.approx(sum(products[:5]), abs=0.1)


def test_case_diameters_reports_voxels_on_the_full_grid():
    labels = np.zeros((60, 60, 30), dtype=np.uint8)
    labels[20:40, 22:36, 10:20] = 2
    labels[25:35, 25:33, 12:18] = 4
    r = case_diameters(labels, np.eye(4), get_scheme("brats"))
    assert set(r) == {"WT", "TC", "ET"}
    alone = lesion_diameters(labels == 4, np.eye(4))
    et = r["ET"]["lesions"][0]
    assert et["slice"] == alone["slice"] and et["axial_ends_voxel"] == alone["axial_ends_voxel"]
    assert et["centre_mm"] == [29.5, 28.5, 14.5]
    assert r["WT"]["lesions"][0]["axial_mm"] > et["axial_mm"]


@pytest.mark.parametrize(
    "mask, affine",
    [(np.zeros((4, 4)), np.eye(4)), (np.ones((3, 3, 3)), np.eye(3)), (np.ones((3, 3, 3)), np.zeros((4, 4)))],
)
def test_bad_input_is_refused_in_one_line(mask, affine):
    with pytest.raises(InputError) as err:
        lesion_diameters(mask, affine)
    assert "\n" not in str(err.value)


def test_real_case_invariants_and_speed(brats_root):
    import time

    import nibabel as nib

    seg = min(brats_root.glob("*/*seg.nii*"))
    img = nib.load(seg)
    labels = np.asarray(img.dataobj)
    start = time.perf_counter()
    r = case_diameters(labels, img.affine, get_scheme("brats"))
    elapsed = time.perf_counter() - start
    for region in r.values():
        for le in region["lesions"]:
            assert le["perpendicular_mm"] <= le["axial_mm"] <= le["longest_3d_mm"] + 1e-6
    assert r["WT"]["lesions"][0]["axial_mm"] >= r["ET"]["lesions"][0]["axial_mm"]
    assert elapsed < 5.0  # measured ~0.3 s on 2 shared cores; this only catches a return to whole-volume work


def test_label_lesions_numbers_largest_first_as_region_diameters_lists_them():
    shape = (40, 40, 10)
    m = (
        _box(shape, (2, 2, 2), (6, 6, 6))
        | _box(shape, (20, 20, 2), (30, 30, 8))
        | _box(shape, (35, 2, 2), (36, 3, 3))
    )
    found, count, n_small = label_lesions(m, 1.0)
    assert (count, n_small) == (2, 1)
    assert np.count_nonzero(found == 1) == 600 and np.count_nonzero(found == 2) == 64
    r = region_diameters(m, np.eye(4))
    assert [le["id"] for le in r["lesions"]] == [1, 2] and r["lesions"][0]["volume_ml"] == 0.6


def test_fragments_of_one_rim_are_one_lesion():
    shape = (60, 60, 8)
    ring = _box(shape, (10, 10, 2), (40, 40, 6)) & ~_box(shape, (14, 14, 2), (36, 36, 6))
    ring[24:26, :, :] = False  # the rim broken in two places: two components, 2 voxels apart
    _, plain, _ = label_lesions(ring, 1.0, group_iterations=0)
    _, grouped, _ = label_lesions(ring, 1.0)
    assert (plain, grouped) == (2, 1)
    r = region_diameters(ring, np.eye(4))
    assert r["count"] == 1 and r["lesions"][0]["axial_mm"] == pytest.approx(np.hypot(30, 30), abs=0.01)


def test_slice_rules_pick_the_longest_diameter_or_the_largest_product():
    # two slices: a long thin bar (axial 40 x 4) and a square (20 x 20, product 400 > bar's ~160)
    m = np.zeros((50, 50, 4), dtype=bool)
    m[5:45, 10:14, 1] = True
    m[10:30, 20:40, 2] = True
    by_diameter = lesion_diameters(m, np.eye(4), rule="diameter")
    by_product = lesion_diameters(m, np.eye(4), rule="product")
    assert by_diameter["slice"] == 1 and by_diameter["axial_mm"] == pytest.approx(np.hypot(40, 4), abs=0.01)
    assert by_product["slice"] == 2 and by_product["axial_mm"] == pytest.approx(np.hypot(20, 20), abs=0.01)
    assert by_product["product_mm2"] > by_diameter["product_mm2"]
    with pytest.raises(InputError):
        lesion_diameters(m, np.eye(4), rule="area")
