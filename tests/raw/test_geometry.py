import numpy as np
import pytest

from medseg3d.io import Volume, read_volume
from medseg3d.raw.geometry import (
    covering_grid,
    matrix_to_sitk,
    resample,
    sitk_affine,
    sitk_to_matrix,
    sitk_to_volume,
    volume_to_sitk,
)
from medseg3d.raw.simulate import permute_axes, rigid_matrix, rotation


def _oblique_affine():
    rot = rotation([1.0, 2.0, 0.5], 11.0)
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([-0.9, 0.9, 5.5])
    affine[:3, 3] = [113.7, -74.6, -46.9]
    return affine


def test_a_volume_goes_to_simpleitk_and_back_without_changing_grid_or_voxels():
    rng = np.random.default_rng(0)
    vol = Volume(rng.normal(size=(7, 5, 4)).astype(np.float32), _oblique_affine())
    image = volume_to_sitk(vol)
    assert image.GetSize() == (7, 5, 4)
    np.testing.assert_allclose(image.GetSpacing(), [0.9, 0.9, 5.5], atol=1e-9)
    back = sitk_to_volume(image)
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-9)
    np.testing.assert_allclose(sitk_affine(image), vol.affine, atol=1e-9)


def test_a_simpleitk_transform_and_its_matrix_describe_the_same_map():
    import SimpleITK as sitk

    euler = sitk.Euler3DTransform((10.0, -20.0, 5.0), 0.1, -0.05, 0.2, (3.0, 1.0, -2.0))
    m = sitk_to_matrix(euler)
    for p in [(0.0, 0.0, 0.0), (50.0, -30.0, 12.0)]:
        np.testing.assert_allclose(m[:3, :3] @ p + m[:3, 3], euler.TransformPoint(p), atol=1e-9)
    np.testing.assert_allclose(sitk_to_matrix(matrix_to_sitk(m)), m, atol=1e-12)
    # a composite applies the transform added last first
    shift = sitk.TranslationTransform(3, (1.0, 2.0, 3.0))
    comp = sitk.CompositeTransform([euler, shift])
    p = (4.0, 5.0, 6.0)
    np.testing.assert_allclose(
        sitk_to_matrix(comp)[:3, :3] @ p + sitk_to_matrix(comp)[:3, 3], comp.TransformPoint(p), atol=1e-9
    )


def test_resampling_through_a_known_shift_moves_the_voxels_by_it():
    arr = np.zeros((20, 20, 20), np.float32)
    arr[8:12, 8:12, 8:12] = 1.0
    vol = Volume(arr, np.eye(4))
    # grid points -> source points: p + (2, 0, 0) in LPS, i.e. -2 mm along RAS x (voxel axis 0)
    shifted = resample(vol, vol.shape, vol.affine, rigid_matrix(np.eye(3), [2.0, 0, 0], [0, 0, 0]), order=0)
    np.testing.assert_array_equal(shifted[10:14, 8:12, 8:12], 1.0)
    assert shifted.sum() == arr.sum()


def test_permuted_axes_are_brought_back_exactly_by_the_covering_grid(brats_root):
    vol = read_volume(brats_root / "Brats18_2013_2_1" / "Brats18_2013_2_1_t1.nii.gz")
    permuted = permute_axes(vol)
    assert permuted.axcodes == ("I", "L", "P")
    shape, grid = covering_grid(permuted.shape, permuted.affine, ("L", "P", "S"), (1, 1, 1))
    assert shape == vol.shape
    np.testing.assert_allclose(grid, vol.affine, atol=1e-6)
    np.testing.assert_allclose(resample(permuted, shape, grid, order=1), vol.array, atol=1e-3)


def test_covering_grid_at_another_spacing_keeps_the_field_of_view():
    affine = np.diag([-0.9, 0.9, 3.0, 1.0])
    shape, grid = covering_grid((100, 100, 20), affine, ("L", "P", "S"), (1.0, 1.0, 1.0))
    extent = np.array([99 * 0.9, 99 * 0.9, 19 * 3.0])
    assert np.all(np.abs((np.array(shape) - 1) - extent) <= 1.0)
    assert tuple(np.sign(np.diag(grid)[:3])) == (-1.0, -1.0, 1.0)


@pytest.mark.parametrize("order", [0, 1])
def test_resampling_onto_the_same_grid_is_the_identity(order):
    rng = np.random.default_rng(1)
    vol = Volume(rng.random((6, 7, 8)).astype(np.float32), _oblique_affine())
    np.testing.assert_allclose(resample(vol, vol.shape, vol.affine, order=order), vol.array, atol=1e-5)
