"""read_volume refuses corrupt, oversized, implausible and odd inputs with one line naming the file."""

from __future__ import annotations

import gzip
import os
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

import medseg3d.io as mio
from medseg3d.errors import InputError
from medseg3d.io import read_volume

CASE = "Brats18_2013_2_1"


def _refused(path, *fragments, **kwargs) -> str:
    with pytest.raises(InputError) as e:
        read_volume(path, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg, msg
    assert str(path) in msg, msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)
    return msg


def _nifti(path: Path, array, affine=None) -> Path:
    img = nib.Nifti1Image(array, np.eye(4) if affine is None else affine, dtype=array.dtype)
    nib.save(img, str(path))
    return path


@pytest.fixture(scope="module")
def flair_bytes(brats_root) -> bytes:
    return (brats_root / CASE / f"{CASE}_flair.nii.gz").read_bytes()


# ---------------------------------------------------------------------------------------- gzip integrity


def test_gzip_data_bit_flip_is_refused(flair_bytes, tmp_path):
    # a flipped bit inside the deflate stream: before, nibabel read it without reaching the CRC
    hits = 0
    for k, where in enumerate((0.3, 0.5, 0.7, 0.9)):
        data = bytearray(flair_bytes)
        data[int(len(data) * where)] ^= 0x04
        path = tmp_path / f"flip{k}.nii.gz"
        path.write_bytes(bytes(data))
        _refused(path, "cannot read", "compressed data")
        hits += 1
    assert hits == 4


def test_gzip_crc_and_length_fields_are_checked(flair_bytes, tmp_path):
    for name, offset in (("crc", -6), ("length", -2)):
        data = bytearray(flair_bytes)
        data[offset] ^= 0x01
        path = tmp_path / f"{name}.nii.gz"
        path.write_bytes(bytes(data))
        _refused(path, "cannot read", "compressed data")


def test_truncated_gzip_and_uncompressed_nifti(flair_bytes, tmp_path):
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(flair_bytes[: len(flair_bytes) * 3 // 4])
    _refused(cut, "cannot read")
    raw = gzip.decompress(flair_bytes)
    short = tmp_path / "short.nii"
    short.write_bytes(raw[: len(raw) - 1000])
    _refused(short, "cannot read", "truncated", f"{len(raw) - 1000:,} of the {len(raw):,} bytes")


def test_clean_file_reads_the_same_as_nibabel(brats_root):
    path = brats_root / CASE / f"{CASE}_flair.nii.gz"
    np.testing.assert_array_equal(read_volume(path).array, np.asanyarray(nib.load(str(path)).dataobj))


def test_named_gz_but_not_compressed(tmp_path):
    plain = _nifti(tmp_path / "a.nii", np.ones((3, 3, 3), np.int16))
    renamed = tmp_path / "a.nii.gz"
    renamed.write_bytes(plain.read_bytes())
    _refused(renamed, "not gzip-compressed", "rename it to .nii")


# ------------------------------------------------------------------------------- size before allocation


def _header_only(path: Path, shape, dtype=np.uint8, zeros: int = 0, compress: bool = True) -> Path:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    payload = hdr.binaryblock + b"\0" * 4 + b"\0" * zeros
    if compress:
        with gzip.open(path, "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)
    return path


def test_gzip_bomb_and_huge_header_refused_without_allocating(tmp_path):
    bomb = _header_only(tmp_path / "bomb.nii.gz", (1400, 1400, 1400), zeros=2**24)
    claim = _header_only(tmp_path / "claim.nii", (2048, 1024, 1024), np.int16, zeros=50_000, compress=False)
    tracemalloc.start()
    try:
        _refused(bomb, "2,744,000,000 voxels", "limit of 268,435,456", "MEDSEG3D_MAX_VOXELS")
        _refused(claim, "2,147,483,648 voxels", "MEDSEG3D_MAX_VOXELS")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, peak  # the header and a few buffers, not gigabytes


def test_voxel_limit_follows_environment(tmp_path, monkeypatch):
    path = _nifti(tmp_path / "small.nii.gz", np.ones((10, 10, 10), np.int16))
    assert read_volume(path).shape == (10, 10, 10)
    monkeypatch.setenv("MEDSEG3D_MAX_VOXELS", "999")
    _refused(path, "1,000 voxels", "limit of 999")
    monkeypatch.setenv("MEDSEG3D_MAX_VOXELS", "lots")
    with pytest.raises(InputError, match="MEDSEG3D_MAX_VOXELS"):
        read_volume(path)


def test_default_limit_holds_real_sizes():
    assert 240 * 240 * 155 * 4 <= mio.DEFAULT_MAX_VOXELS
    assert 512 * 512 * 400 <= mio.DEFAULT_MAX_VOXELS
    assert 1400**3 > mio.DEFAULT_MAX_VOXELS and 2**31 > mio.DEFAULT_MAX_VOXELS


def test_itk_header_checked_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "a.mha"
    sitk.WriteImage(sitk.Image(20, 10, 5, sitk.sitkInt16), str(path))
    monkeypatch.setenv("MEDSEG3D_MAX_VOXELS", "999")
    _refused(path, "20 x 10 x 5 x 1 = 1,000 voxels", "limit of 999")


# ------------------------------------------------------------------------------------------- data types


def test_rgb_and_complex_nifti_refused(tmp_path):
    rgb = np.zeros((4, 4, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    _refused(_nifti(tmp_path / "rgb.nii.gz", rgb), "RGB colour voxels", "one grey-value channel")
    _refused(_nifti(tmp_path / "cx.nii.gz", np.zeros((4, 4, 4), np.complex64)), "complex voxels")


# --------------------------------------------------------------------------------------- voxel values


def test_nan_inf_and_absurd_values(tmp_path):
    a = np.ones((6, 6, 6), np.float32)
    a[1, 2, 3] = np.nan
    a[2, 2, 2] = np.inf
    path = _nifti(tmp_path / "nan.nii.gz", a)
    _refused(path, "2 NaN or infinite voxels")
    assert np.isnan(read_volume(path, check_voxels=False).array).sum() == 1  # info can still describe it
    b = np.ones((6, 6, 6), np.float32)
    b[:, :, :2] = 3e38
    _refused(_nifti(tmp_path / "huge.nii.gz", b), "3e+38", "limit 1e+10")
    c = np.ones((6, 6, 6), np.int64)
    c[0, 0, 0] = -(10**12)
    _refused(_nifti(tmp_path / "big_int.nii.gz", c), "1e+12")


def test_negative_values_are_legal(tmp_path):
    a = np.arange(-100, 116, dtype=np.int16).reshape(6, 6, 6)
    np.testing.assert_array_equal(read_volume(_nifti(tmp_path / "neg.nii.gz", a)).array, a)


def test_zero_and_absurd_voxel_size(tmp_path):
    img = nib.Nifti1Image(np.ones((4, 4, 4), np.int16), np.eye(4))
    img.set_sform(None, 0)
    img.set_qform(None, 0)
    img.header["pixdim"][2] = 0
    raw = img.header.binaryblock + b"\0" * 4 + np.ones((4, 4, 4), np.int16).tobytes()
    path = tmp_path / "zero.nii"
    path.write_bytes(raw)
    _refused(path, "voxel size (1, 0, 1)", "pixdim")
    _refused(
        _nifti(tmp_path / "far.nii.gz", np.ones((4, 4, 4), np.int16), np.diag([1.0, 1e30, 1.0, 1.0])),
        "voxel size",
        "absurd",
    )


# ---------------------------------------------------------------------------------------------- paths


def test_symlink_loop_broken_link_fifo_and_folder(tmp_path):
    (tmp_path / "a.nii.gz").symlink_to(tmp_path / "b.nii.gz")
    (tmp_path / "b.nii.gz").symlink_to(tmp_path / "a.nii.gz")
    _refused(tmp_path / "a.nii.gz", "symbolic link loop")
    (tmp_path / "dangling.nii.gz").symlink_to(tmp_path / "gone.nii.gz")
    _refused(tmp_path / "dangling.nii.gz", "broken symbolic link")
    os.mkfifo(tmp_path / "pipe.nii.gz")
    _refused(tmp_path / "pipe.nii.gz", "not a regular file")  # would block for ever if opened
    (tmp_path / "dir.nii.gz").mkdir()
    _refused(tmp_path / "dir.nii.gz", "is a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file(tmp_path):
    path = _nifti(tmp_path / "secret.nii.gz", np.ones((3, 3, 3), np.int16))
    path.chmod(0)
    try:
        _refused(path, "permission denied")
    finally:
        path.chmod(0o600)


# ---------------------------------------------------------------------------------- MetaImage and NRRD


def test_compressed_metaimage_corruption_refused(data_root, tmp_path):
    data = (data_root / "brats2012_mha" / "BRATS_HG0015_T1.mha").read_bytes()
    start = data.find(b"ElementDataFile")
    flipped = bytearray(data)
    flipped[start + (len(data) - start) // 2] ^= 0x08
    (tmp_path / "flip.mha").write_bytes(bytes(flipped))
    _refused(tmp_path / "flip.mha", "cannot read", "compressed data are corrupt")
    (tmp_path / "cut.mha").write_bytes(data[: start + (len(data) - start) // 2])
    _refused(tmp_path / "cut.mha", "cannot read", "truncated")


def test_gzip_nrrd_crc_checked(tmp_path):
    arr = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / "a.nrrd"), useCompression=True)
    np.testing.assert_array_equal(read_volume(tmp_path / "a.nrrd").array, arr.transpose(2, 1, 0))
    data = bytearray((tmp_path / "a.nrrd").read_bytes())
    data[-6] ^= 0x01  # the CRC-32 of the gzip trailer
    (tmp_path / "crc.nrrd").write_bytes(bytes(data))
    _refused(tmp_path / "crc.nrrd", "compressed data are corrupt")


def test_a_dicom_series_with_missing_slices_is_refused(tmp_path):
    """Issue 36 (hospital exports): ITK stacks the slices around a gap as if adjacent, squeezing the
    anatomy."""
    from layouts import write_dicom_series

    from medseg3d.io import Volume

    rng = np.random.default_rng(0)
    vol = Volume(rng.integers(0, 500, (20, 24, 12)).astype(np.int16), np.diag([0.9, 0.9, 3.0, 1.0]))
    folder = write_dicom_series(vol, tmp_path / "T2", "AX T2", 1)
    assert read_volume(folder).shape == (20, 24, 12)
    (folder / "IM0006.dcm").unlink()
    with pytest.raises(InputError) as e:
        read_volume(folder)
    assert str(e.value) == (
        f"{folder}: the DICOM series misses slices (a gap of 6 mm after slice 5 of 11, where "
        "slices are 3 mm apart); export the complete series"
    )
