"""Reading and writing volumes: round trips on the shared BraTS files, geometry across formats, errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

import medseg3d.io.write as io_write  # where write_volume looks up its format writers
from medseg3d.errors import InputError
from medseg3d.io import Volume, read_volume, write_volume

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def _one_line_error(excinfo, *fragments):
    msg = str(excinfo.value)
    assert isinstance(excinfo.value, InputError)
    assert "\n" not in msg, msg
    for f in fragments:
        assert f in msg, (f, msg)


def _oblique_itk_image(shape_xyz=(11, 9, 7), spacing=(0.8, 1.1, 2.5), dtype=np.int16) -> sitk.Image:
    """A small image whose axes are all different, so that any transposition of shape, spacing or direction
    shows up."""
    rng = np.random.default_rng(1)
    arr = rng.integers(-500, 3000, size=shape_xyz[::-1]).astype(dtype)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin((12.5, -30.25, 7.0))
    a, b = 0.3, -0.2
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    img.SetDirection(tuple((rz @ rx).ravel()))
    return img


def _assert_itk_geometry(vol: Volume, img: sitk.Image, n: int = 40) -> None:
    """Voxel (i, j, k) of ``vol`` has ITK index (i, j, k), the same value and the same physical point."""
    assert vol.shape == tuple(img.GetSize())
    rng = np.random.default_rng(0)
    size = np.array(img.GetSize())
    corners = [np.array(c) * (size - 1) for c in np.ndindex(2, 2, 2)]
    points = corners + [rng.integers(0, size) for _ in range(n)]
    for ijk in points:
        ijk = tuple(int(v) for v in ijk)
        lps = np.array(img.TransformIndexToPhysicalPoint(ijk))
        ras = vol.affine @ np.array(ijk + (1,), dtype=float)
        np.testing.assert_allclose(ras[:3], LPS_TO_RAS @ lps, atol=1e-4)
        assert vol.array[ijk] == img.GetPixel(ijk)


# ------------------------------------------------------------------------------------------------- NIfTI


@pytest.mark.parametrize("kind", ["seg", "t1ce"])
def test_nifti_round_trip_real_file(brats_root, tmp_path, kind):
    src = brats_root / "Brats18_2013_20_1" / f"Brats18_2013_20_1_{kind}.nii.gz"
    vol = read_volume(src)
    assert vol.shape == (240, 240, 155)
    assert vol.spacing == (1.0, 1.0, 1.0)
    assert vol.array.dtype == np.int16
    out = write_volume(vol, tmp_path / f"copy_{kind}.nii.gz")
    back = read_volume(out)
    assert back.array.dtype == vol.array.dtype
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_array_equal(back.affine, vol.affine)
    h0, h1 = nib.load(str(src)).header, nib.load(str(out)).header
    for field in (
        "qform_code",
        "sform_code",
        "pixdim",
        "dim",
        "quatern_b",
        "quatern_c",
        "quatern_d",
        "qoffset_x",
        "qoffset_y",
        "qoffset_z",
        "srow_x",
        "srow_y",
        "srow_z",
        "xyzt_units",
    ):
        np.testing.assert_array_equal(h1[field], h0[field], err_msg=field)
    assert h1.get_data_dtype() == h0.get_data_dtype()
    assert out.read_bytes()[:2] == b"\x1f\x8b"  # really gzip-compressed


def test_nifti_uncompressed_and_geometry_codes(tmp_path):
    aff = np.array([[0, 0, 2.0, -10], [-0.9, 0, 0, 20], [0, 1.2, 0, 5], [0, 0, 0, 1]])
    img = nib.Nifti1Image(np.arange(60, dtype=np.float32).reshape(3, 4, 5), aff)
    img.set_qform(aff, 1)
    img.set_sform(aff, 2)
    nib.save(img, str(tmp_path / "a.nii"))
    vol = read_volume(tmp_path / "a.nii")
    np.testing.assert_allclose(vol.affine, aff, atol=1e-6)
    assert vol.spacing == pytest.approx((0.9, 1.2, 2.0))
    assert vol.axcodes == ("P", "S", "R")
    write_volume(vol, tmp_path / "b.nii")
    h = nib.load(str(tmp_path / "b.nii")).header
    assert (int(h["qform_code"]), int(h["sform_code"])) == (1, 2)
    np.testing.assert_array_equal(read_volume(tmp_path / "b.nii").array, vol.array)


def test_nifti_4d_multichannel(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(8, 9, 10, 3)).astype(np.float32)
    aff = np.diag([1.5, 1.5, 3.0, 1.0])
    nib.save(nib.Nifti1Image(arr, aff), str(tmp_path / "multi.nii.gz"))
    vol = read_volume(tmp_path / "multi.nii.gz")
    assert vol.array.shape == (8, 9, 10, 3)
    assert vol.shape == (8, 9, 10)
    assert vol.spacing == (1.5, 1.5, 3.0)
    write_volume(vol, tmp_path / "multi2.nii.gz")
    back = read_volume(tmp_path / "multi2.nii.gz")
    np.testing.assert_array_equal(back.array, arr)
    # and as a vector MetaImage: channels stay last, geometry survives
    write_volume(vol, tmp_path / "multi.mha")
    itk = sitk.ReadImage(str(tmp_path / "multi.mha"))
    assert itk.GetNumberOfComponentsPerPixel() == 3
    assert itk.GetSize() == (8, 9, 10)
    back = read_volume(tmp_path / "multi.mha")
    np.testing.assert_array_equal(back.array, arr)
    np.testing.assert_allclose(back.affine, aff)


def test_nifti_5d_vector_with_singleton_time(tmp_path):
    arr = np.arange(4 * 5 * 6 * 2, dtype=np.int16).reshape(4, 5, 6, 1, 2)
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(tmp_path / "v.nii.gz"))
    vol = read_volume(tmp_path / "v.nii.gz")
    np.testing.assert_array_equal(vol.array, arr[:, :, :, 0, :])


def test_scaled_nifti_reads_real_values(tmp_path):
    arr = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    img = nib.Nifti1Image(arr, np.eye(4))
    img.header.set_slope_inter(2.0, 1.0)
    nib.save(img, str(tmp_path / "s.nii.gz"))
    vol = read_volume(tmp_path / "s.nii.gz")
    np.testing.assert_allclose(vol.array, arr * 2.0 + 1.0)
    write_volume(vol, tmp_path / "t.nii.gz")
    np.testing.assert_allclose(read_volume(tmp_path / "t.nii.gz").array, arr * 2.0 + 1.0)


def test_bool_and_int64_arrays_are_written_as_small_ints(tmp_path):
    base = Volume(np.zeros((3, 4, 5), np.int16), np.eye(4))
    write_volume(base.with_array(np.ones((3, 4, 5), bool)), tmp_path / "b.nii.gz")
    assert read_volume(tmp_path / "b.nii.gz").array.dtype == np.uint8
    write_volume(base.with_array(np.full((3, 4, 5), 7, np.int64)), tmp_path / "i.nii.gz")
    back = read_volume(tmp_path / "i.nii.gz").array
    assert back.dtype == np.int32 and (back == 7).all()
    write_volume(base.with_array(np.full((3, 4, 5), 0.5, np.float16)), tmp_path / "h.mha")
    assert read_volume(tmp_path / "h.mha").array.dtype == np.float32


# ---------------------------------------------------------------------------------------- MetaImage / NRRD


@pytest.mark.parametrize("name", ["BRATS_HG0015_T1C.mha", "BRATS_HG0015_truth.mha"])
def test_mha_round_trip_real_file(data_root, tmp_path, name):
    src = data_root / "brats2012_mha" / name
    vol = read_volume(src)
    itk = sitk.ReadImage(str(src))
    # (x, y, z); the README's 176 x 216 x 160 is (z, y, x)
    assert vol.shape == (160, 216, 176) == itk.GetSize()
    assert vol.array.dtype == np.int16
    out = write_volume(vol, tmp_path / name)
    back = read_volume(out)
    assert back.array.dtype == vol.array.dtype
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-9)
    itk2 = sitk.ReadImage(str(out))
    assert itk2.GetSize() == itk.GetSize()
    np.testing.assert_allclose(itk2.GetOrigin(), itk.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(itk2.GetSpacing(), itk.GetSpacing(), atol=1e-9)
    np.testing.assert_allclose(itk2.GetDirection(), itk.GetDirection(), atol=1e-9)
    assert itk2.GetPixelID() == itk.GetPixelID()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(itk2), sitk.GetArrayFromImage(itk))


def test_mha_to_nifti_is_geometrically_equivalent_real_file(data_root, tmp_path):
    src = data_root / "brats2012_mha" / "BRATS_HG0015_FLAIR.mha"
    itk = sitk.ReadImage(str(src))
    vol = read_volume(src)
    _assert_itk_geometry(vol, itk)
    out = write_volume(vol, tmp_path / "flair.nii.gz")
    nii = nib.load(str(out))
    # an independent reader of the NIfTI (nibabel, not our Volume) sees the same world grid
    nii_vol = Volume(np.asanyarray(nii.dataobj), nii.affine)
    _assert_itk_geometry(nii_vol, itk)
    # and SimpleITK reading our NIfTI agrees with SimpleITK reading the MHA
    itk_nii = sitk.ReadImage(str(out))
    np.testing.assert_allclose(itk_nii.GetOrigin(), itk.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(itk_nii.GetDirection(), itk.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(itk_nii.GetSpacing(), itk.GetSpacing(), atol=1e-6)


@pytest.mark.parametrize("suffix", [".mha", ".nrrd"])
def test_oblique_anisotropic_itk_file_geometry(tmp_path, suffix):
    img = _oblique_itk_image()
    sitk.WriteImage(img, str(tmp_path / f"obl{suffix}"))
    vol = read_volume(tmp_path / f"obl{suffix}")
    assert vol.spacing == pytest.approx((0.8, 1.1, 2.5))
    _assert_itk_geometry(vol, img)
    # to NIfTI and back to the source format: the same physical grid everywhere
    write_volume(vol, tmp_path / "obl.nii.gz")
    nii = nib.load(str(tmp_path / "obl.nii.gz"))
    _assert_itk_geometry(Volume(np.asanyarray(nii.dataobj), nii.affine), img)
    write_volume(read_volume(tmp_path / "obl.nii.gz"), tmp_path / f"again{suffix}")
    again = sitk.ReadImage(str(tmp_path / f"again{suffix}"))
    np.testing.assert_allclose(again.GetOrigin(), img.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(again.GetSpacing(), img.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(again.GetDirection(), img.GetDirection(), atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(again), sitk.GetArrayFromImage(img))


@pytest.mark.parametrize("suffix", [".nrrd", ".nhdr", ".mhd"])
def test_itk_round_trip_all_suffixes(tmp_path, suffix):
    sitk.WriteImage(_oblique_itk_image(dtype=np.float32), str(tmp_path / "src.nrrd"))
    vol = read_volume(tmp_path / "src.nrrd")
    out = write_volume(vol, tmp_path / f"copy{suffix}")
    back = read_volume(out)
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.array.dtype == np.float32
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-9)
    # detached headers point to a data file under the final name, and no temporary file remains
    names = sorted(os.listdir(tmp_path))
    assert not [n for n in names if n.startswith(".")], names
    if suffix in (".nhdr", ".mhd"):
        data_files = [n for n in names if n.startswith("copy.") and n != f"copy{suffix}"]
        assert data_files, names
        shutil.move(str(tmp_path), str(tmp_path.parent / (tmp_path.name + "_moved")))  # relative reference
        moved = tmp_path.parent / (tmp_path.name + "_moved")
        np.testing.assert_array_equal(read_volume(moved / f"copy{suffix}").array, vol.array)
        shutil.move(str(moved), str(tmp_path))


# ------------------------------------------------------------------------------------------------- DICOM


def _write_dicom_series(img: sitk.Image, folder: Path) -> None:
    folder.mkdir()
    direction = img.GetDirection()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    tags = [
        ("0008|0060", "MR"),
        ("0020|000d", "1.2.826.0.1.3680043.2.1125.1.1"),
        ("0020|000e", "1.2.826.0.1.3680043.2.1125.1.2"),
        ("0020|0037", "\\".join(str(v) for v in direction[0:9:3] + direction[1:9:3])),
        ("0008|103e", "medseg3d test series"),
    ]
    for k in range(img.GetDepth()):
        sl = img[:, :, k]
        for tag, value in tags:
            sl.SetMetaData(tag, value)
        sl.SetMetaData("0020|0032", "\\".join(str(v) for v in img.TransformIndexToPhysicalPoint((0, 0, k))))
        sl.SetMetaData("0020|0013", str(k + 1))
        sl.SetMetaData("0008|0018", f"1.2.826.0.1.3680043.2.1125.1.3.{k + 1}")
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(sl)


def test_dicom_series_folder(tmp_path):
    img = _oblique_itk_image(shape_xyz=(20, 24, 6), spacing=(0.8, 0.9, 2.5))
    # DICOM slices are stacked along the normal of the slice plane: keep the third axis orthogonal
    c, s = np.cos(0.3), np.sin(0.3)
    img.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    _write_dicom_series(img, tmp_path / "series")
    vol = read_volume(tmp_path / "series")
    assert vol.meta["format"] == "dicom"
    assert vol.array.dtype == np.int16
    np.testing.assert_array_equal(vol.array, np.transpose(sitk.GetArrayFromImage(img), (2, 1, 0)))
    assert vol.spacing == pytest.approx((0.8, 0.9, 2.5))
    _assert_itk_geometry(vol, img)
    # and written out as NIfTI, it describes the same grid
    write_volume(vol, tmp_path / "series.nii.gz")
    nii = nib.load(str(tmp_path / "series.nii.gz"))
    _assert_itk_geometry(Volume(np.asanyarray(nii.dataobj), nii.affine), img)


def test_folder_with_two_dicom_series_is_refused(tmp_path):
    img = _oblique_itk_image(shape_xyz=(6, 5, 3), spacing=(1, 1, 1))
    img.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, 1))
    _write_dicom_series(img, tmp_path / "a")
    for f in (tmp_path / "a").iterdir():  # a second series: same slices, other series UID
        r = sitk.ReadImage(str(f))
        r.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1.99")
        r.SetMetaData("0008|0018", r.GetMetaData("0008|0018") + ".9")
        w = sitk.ImageFileWriter()
        w.KeepOriginalImageUIDOn()
        w.SetFileName(str(tmp_path / "a" / ("b_" + f.name)))
        w.Execute(r)
    with pytest.raises(InputError) as e:
        read_volume(tmp_path / "a")
    _one_line_error(e, "2 DICOM series")


# -------------------------------------------------------------------------------------------- atomicity


def test_write_leaves_no_temporary_file(tmp_path):
    vol = Volume(np.arange(60, dtype=np.int16).reshape(3, 4, 5), np.eye(4))
    for name in ("a.nii.gz", "b.nii", "c.mha", "d.nrrd"):
        write_volume(vol, tmp_path / name)
    write_volume(vol, tmp_path / "a.nii.gz")  # overwrite
    assert sorted(os.listdir(tmp_path)) == ["a.nii.gz", "b.nii", "c.mha", "d.nrrd"]


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha"])
def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch, suffix):
    vol = Volume(np.arange(60, dtype=np.int16).reshape(3, 4, 5), np.eye(4))
    target = tmp_path / f"out{suffix}"

    def broken_writer(array, volume, path):
        Path(path).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io_write, "write_nifti", broken_writer)
    monkeypatch.setattr(io_write, "write_itk", broken_writer)
    with pytest.raises(InputError) as e:
        write_volume(vol, target)
    _one_line_error(e, str(target), "No space left")
    assert os.listdir(tmp_path) == []
    # an existing file is left untouched by a failed overwrite
    monkeypatch.undo()
    write_volume(vol, target)
    before = target.read_bytes()
    monkeypatch.setattr(io_write, "write_nifti", broken_writer)
    monkeypatch.setattr(io_write, "write_itk", broken_writer)
    with pytest.raises(InputError):
        write_volume(vol.with_array(vol.array * 2), target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == [target.name]


# ------------------------------------------------------------------------------------------------ errors


def test_missing_path(tmp_path):
    with pytest.raises(InputError) as e:
        read_volume(tmp_path / "nope.nii.gz")
    _one_line_error(e, "nope.nii.gz", "no such file")


def test_unknown_suffix(tmp_path):
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    with pytest.raises(InputError) as e:
        read_volume(tmp_path / "image.png")
    _one_line_error(e, "image.png", "unknown image format", ".nii.gz")
    vol = Volume(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    with pytest.raises(InputError) as e:
        write_volume(vol, tmp_path / "out.png")
    _one_line_error(e, "out.png", "unknown output format")


def test_truncated_nifti(brats_root, tmp_path):
    data = (brats_root / "Brats18_2013_20_1" / "Brats18_2013_20_1_flair.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as e:
        read_volume(tmp_path / "cut.nii.gz")
    _one_line_error(e, "cut.nii.gz", "cannot read")


@pytest.mark.parametrize("name", ["junk.nii.gz", "junk.nii", "junk.mha", "junk.nrrd"])
def test_corrupt_files(tmp_path, name):
    (tmp_path / name).write_bytes(os.urandom(2000))
    with pytest.raises(InputError) as e:
        read_volume(tmp_path / name)
    _one_line_error(e, name, "cannot read")
    assert "sitkImageReaderBase" not in str(e.value)  # the useful part of ITK's message, not its source line


def test_empty_file(tmp_path):
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    with pytest.raises(InputError) as e:
        read_volume(tmp_path / "empty.nii.gz")
    _one_line_error(e, "empty.nii.gz")


def test_folder_without_dicom(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image", encoding="utf-8")
    with pytest.raises(InputError) as e:
        read_volume(tmp_path)
    _one_line_error(e, str(tmp_path), "no DICOM")


def test_two_dimensional_itk_image_refused(tmp_path):
    sitk.WriteImage(sitk.Image(5, 6, sitk.sitkUInt8), str(tmp_path / "flat.mha"))
    with pytest.raises(InputError) as e:
        read_volume(tmp_path / "flat.mha")
    _one_line_error(e, "flat.mha", "3D")


def _make_unwritable(folder: Path):
    """Make ``folder`` unwritable even for root (immutable attribute), or by permissions for a normal user."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        return lambda: folder.chmod(0o700)
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: cannot make a folder unwritable")
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("running as root and chattr +i is not allowed here")
    return lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_unwritable_output_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    restore = _make_unwritable(folder)
    try:
        with pytest.raises(InputError) as e:
            write_volume(Volume(np.zeros((2, 2, 2), np.uint8), np.eye(4)), folder / "out.nii.gz")
        _one_line_error(e, "locked", "not writable")
    finally:
        restore()
    assert os.listdir(folder) == []


def test_missing_output_folder_and_folder_as_target(tmp_path):
    vol = Volume(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    with pytest.raises(InputError) as e:
        write_volume(vol, tmp_path / "no" / "such" / "out.nii.gz")
    _one_line_error(e, "does not exist")
    (tmp_path / "dir.nii.gz").mkdir()
    with pytest.raises(InputError) as e:
        write_volume(vol, tmp_path / "dir.nii.gz")
    _one_line_error(e, "is a folder")


def test_overwrite_false_keeps_existing_file(tmp_path):
    vol = Volume(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    target = write_volume(vol, tmp_path / "x.nii.gz")
    before = target.read_bytes()
    with pytest.raises(InputError) as e:
        write_volume(vol.with_array(np.ones((2, 2, 2), np.uint8)), target, overwrite=False)
    _one_line_error(e, "x.nii.gz", "exists")
    assert target.read_bytes() == before


def test_volume_validation():
    with pytest.raises(InputError):
        Volume(np.zeros((2, 2, 2)), np.eye(3))
    with pytest.raises(InputError):
        Volume(np.zeros((2, 2)), np.eye(4))
    vol = Volume(np.zeros((2, 3, 4)), np.diag([2.0, 3.0, 4.0, 1.0]))
    with pytest.raises(InputError):
        vol.with_array(np.zeros((2, 3, 5)))
    assert vol.spacing == (2.0, 3.0, 4.0)
    np.testing.assert_allclose(vol.direction, np.eye(3))
    assert vol.same_grid(vol.with_array(np.ones((2, 3, 4))))
    shifted = Volume(
        vol.array, vol.affine + np.array([[0, 0, 0, 0.5], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    )
    assert not vol.same_grid(shifted)


# ------------------------------------------------------------------------------------ atomic writes (#18)


def test_atomic_write_replaces_whole_files_with_ordinary_permissions(tmp_path):
    import os
    import stat

    from medseg3d.io import atomic_write, write_text_atomic

    target = tmp_path / "sub" / "notes.txt"
    assert write_text_atomic("first", target) == target  # the folder is created
    write_text_atomic("second", target)
    assert target.read_text(encoding="utf-8") == "second"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600
    previous = tmp_path / "sub" / "notes.prev"
    atomic_write(target, lambda tmp: Path(tmp).write_text("third"), previous=previous)
    assert previous.read_text() == "second" and target.read_text() == "third"
    assert sorted(p.name for p in target.parent.iterdir()) == ["notes.prev", "notes.txt"]


def test_atomic_write_that_fails_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    from medseg3d.io import atomic_write

    target = tmp_path / "model.bin"
    target.write_bytes(b"good")

    def half_then_full_disk(tmp):
        with open(tmp, "wb") as fh:
            fh.write(b"ha")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(target, half_then_full_disk)
    assert target.read_bytes() == b"good" and [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_two_writers_of_one_json_file_at_once_both_finish(tmp_path, monkeypatch):
    """Two trainings sharing a cache both write its cache.json: a second write that starts and ends while the
    first is mid-way must neither fail nor remove the first one's temporary (a fixed temporary name did both:
    'cannot write the cache (No such file or directory)')."""
    import json

    from medseg3d.io import write_json_atomic

    target = tmp_path / "cache.json"
    real_write = Path.write_text
    others = []

    def write_then_let_the_other_process_write(self, *args, **kwargs):
        result = real_write(self, *args, **kwargs)
        if not others:  # the other process writes the same file, start to end, in between
            others.append(self.name)
            write_json_atomic({"by": "second"}, target)
            assert json.loads(target.read_text(encoding="utf-8")) == {"by": "second"}
        return result

    monkeypatch.setattr(Path, "write_text", write_then_let_the_other_process_write)
    write_json_atomic({"by": "first"}, target)
    assert json.loads(target.read_text(encoding="utf-8")) == {"by": "first"}
    assert [p.name for p in tmp_path.iterdir()] == ["cache.json"]


def test_write_rows_round_trips_columns_in_first_appearance_order(tmp_path):
    import csv

    from medseg3d.io import write_rows

    path = write_rows(
        [{"case": "a", "dice": 0.123456789}, {"case": "b", "hd95": 3.0, "dice": 1}], tmp_path / "r.csv"
    )
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows == [["case", "dice", "hd95"], ["a", "0.123457", ""], ["b", "1", "3"]]
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]
