"""Reading NIfTI (nibabel), MetaImage / NRRD files and DICOM series folders (SimpleITK) into a
:class:`Volume`.

MetaImage / NRRD / DICOM data, which SimpleITK returns as ``(z, y, x)``, are transposed into the ``(x, y, z)``
order of NIfTI, and ITK's LPS origin and direction converted to RAS. ``meta`` keeps what a faithful write-back
needs (the NIfTI header, the source format). Every file passes the checks of :mod:`medseg3d.io.checks`
before (and while) its voxels are read.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from .checks import (
    check_affine,
    check_dtype,
    check_metaimage_data,
    check_nrrd_data,
    check_path,
    check_size,
    check_values,
    gunzip_checked,
    library_error_line,
)
from .volume import LPS_TO_RAS, NIFTI_SUFFIXES, Volume, image_suffix


def is_dicom_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding at least one DICOM series."""
    path = Path(path)
    if not path.is_dir():
        return False
    import SimpleITK as sitk

    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # ITK warns "No Series were found" on stderr
    try:
        return len(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))) > 0
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def read_volume(path: str | os.PathLike, *, check_voxels: bool = True) -> Volume:
    """Read a NIfTI, MetaImage, NRRD file or a DICOM series folder into a :class:`Volume`.

    Before any voxel is read, the header's grid is checked against the voxel limit (:func:`max_voxels`:
    ``MEDSEG3D_MAX_VOXELS``, default 2^28 = 268,435,456 voxels over all channels) and its voxel type
    (RGB, complex and structured types are refused). Compressed data (``.nii.gz``, compressed ``.mha`` /
    ``.mhd``, gzip ``.nrrd``) are checked to the end of their stream: a CRC or length error, or data that end
    before the header's grid is filled, refuse the file. A degenerate voxel size or affine is refused.

    Args:
        path: image file or DICOM series folder.
        check_voxels: also refuse NaN / infinite voxels and magnitudes above 1e10 (:func:`check_values`);
            ``medseg3d info`` turns this off to describe such a file and list the problem.

    Raises:
        InputError: missing path, unknown format, unreadable, corrupt, too large or implausible file
            (one line naming the file, no traceback needed).
    """
    path = Path(path)
    check_path(path)
    if path.is_dir():
        if is_dicom_folder(path):
            vol = _read_dicom_series(path)
            if check_voxels:
                check_values(vol.array, str(path))
            return vol
        raise InputError(
            f"{path}: is a folder with no DICOM series; give an image file (.nii.gz, .mha, .nrrd)"
        )
    suffix = image_suffix(path)
    if suffix == "":
        raise InputError(
            f"{path}: unknown image format; use .nii, .nii.gz, .mha, .mhd, .nrrd or a DICOM folder"
        )
    if path.stat().st_size == 0:
        raise InputError(f"{path}: cannot read this image: the file is empty (0 bytes)")
    try:
        if suffix in NIFTI_SUFFIXES:
            vol = _read_nifti(path)
        else:
            vol = _read_itk(path)
    except InputError:
        raise
    except MemoryError as exc:
        raise InputError(
            f"{path}: not enough memory to read this image; free memory or lower its size"
        ) from exc
    except Exception as exc:  # nibabel/ITK raise many types; all mean "cannot read this file"
        raise InputError(
            f"{path}: cannot read this image ({library_error_line(exc)}); is the file complete and valid?"
        ) from exc
    check_affine(path, vol.affine)
    if check_voxels:
        check_values(vol.array, str(path))
    return vol


def _nifti_header(path: Path, head: bytes):
    import nibabel as nib

    if len(head) < 4:
        raise InputError(f"{path}: cannot read this image: it is too short to hold a NIfTI header")
    sizes = {int.from_bytes(head[:4], "little"), int.from_bytes(head[:4], "big")}
    klass = nib.Nifti2Header if 540 in sizes else nib.Nifti1Header
    if not sizes & {348, 540}:
        raise InputError(
            f"{path}: cannot read this image: it is not a NIfTI file (no NIfTI header); check the file"
        )
    need = klass.sizeof_hdr
    if len(head) < need:
        raise InputError(f"{path}: cannot read this image: it is truncated inside its NIfTI header")
    # check=False: nibabel would quietly set a zero voxel size to 1 mm; _nifti_nbytes refuses it instead
    return klass.from_fileobj(io.BytesIO(head[:need]), check=False)


def _nifti_nbytes(path: Path, header) -> int:
    """Bytes the header describes (offset + voxels), after checking its grid and voxel type."""
    check_dtype(path, header.get_data_dtype(), _nifti_dtype_name(header))
    shape = header.get_data_shape()
    check_size(path, shape)
    zooms = np.asarray(header["pixdim"][1 : 1 + min(3, len(shape))], dtype=np.float64)
    if int(header["sform_code"]) == 0 and (not np.all(np.isfinite(zooms)) or np.any(zooms == 0)):
        shown = ", ".join(f"{v:g}" for v in zooms)
        raise InputError(
            f"{path}: its header gives voxel size ({shown}) mm, zero or not finite, and no sform "
            "matrix; fix the header's pixdim"
        )
    offset = int(header.get_data_offset())
    if offset < 0:
        raise InputError(
            f"{path}: cannot read this image: negative data offset in its header; the file is broken"
        )
    return offset + math.prod(int(d) for d in shape) * header.get_data_dtype().itemsize


def _nifti_dtype_name(header) -> str:
    try:
        return str(header.get_value_label("datatype"))
    except (KeyError, ValueError):  # an unknown datatype code
        return str(header.get_data_dtype())


def _read_nifti(path: Path) -> Volume:
    import nibabel as nib

    if image_suffix(path) == ".nii.gz":
        with open(path, "rb") as fh:
            magic = fh.read(2)
        if magic != b"\x1f\x8b":
            raise InputError(
                f"{path}: cannot read this image: it is not gzip-compressed although named .nii.gz; "
                "rename it to .nii if it is an uncompressed NIfTI file"
            )
        data = gunzip_checked(path, lambda head: _nifti_nbytes(path, _nifti_header(path, head)))
        head = _nifti_header(path, data)
        klass = nib.Nifti2Image if isinstance(head, nib.Nifti2Header) else nib.Nifti1Image
        img = klass.from_bytes(data)
    else:
        with open(path, "rb") as fh:
            head = fh.read(1024)
        needed = _nifti_nbytes(path, _nifti_header(path, head))
        size = path.stat().st_size
        if size < needed:
            raise InputError(
                f"{path}: cannot read this image: it is truncated ({size:,} of the {needed:,} bytes its "
                "header describes); copy or download the file again"
            )
        img = nib.load(str(path))
    array = np.asanyarray(img.dataobj)
    if array.ndim == 5 and array.shape[3] == 1:  # (x, y, z, t=1, c) NIfTI vector images
        array = array[:, :, :, 0, :]
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim not in (3, 4):
        raise InputError(f"{path}: expected a 3D or 4D image, got shape {array.shape}")
    header = img.header.copy()
    return Volume(np.ascontiguousarray(array), img.affine.copy(), {"format": "nifti", "nifti_header": header})


def _itk_to_volume(image, fmt: str, path: Path) -> Volume:
    import SimpleITK as sitk

    dim = image.GetDimension()
    if dim != 3:
        raise InputError(f"{path}: expected a 3D image, got a {dim}D image of size {image.GetSize()}")
    array = sitk.GetArrayFromImage(image)  # (z, y, x[, c])
    if image.GetNumberOfComponentsPerPixel() > 1:
        array = np.transpose(array, (2, 1, 0, 3))
    else:
        array = np.transpose(array, (2, 1, 0))
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(image.GetSpacing())[None, :]
    lps[:3, 3] = image.GetOrigin()
    return Volume(np.ascontiguousarray(array), LPS_TO_RAS @ lps, {"format": fmt})


def _read_itk(path: Path) -> Volume:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()  # the header only: check before anything is allocated
    pixel = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    if "complex" in pixel.lower():
        raise InputError(f"{path}: holds complex voxels ({pixel}); save the magnitude image instead")
    dim = reader.GetDimension()
    if dim != 3:
        raise InputError(f"{path}: expected a 3D image, got a {dim}D image of size {reader.GetSize()}")
    check_size(path, tuple(reader.GetSize()) + (max(1, reader.GetNumberOfComponents()),))
    suffix = image_suffix(path)
    if suffix in (".mha", ".mhd"):
        check_metaimage_data(path)
    elif suffix in (".nrrd", ".nhdr"):
        check_nrrd_data(path)
    return _itk_to_volume(reader.Execute(), "itk", path)


def _check_slice_gaps(path: Path, files) -> None:
    """Refuse a series with missing slices: positions along the slice normal whose largest step is more than
    1.5 times the usual one (ITK would stack the slices around the gap as if they were adjacent, squeezing the
    anatomy). Files without positions (a single-frame export of another kind) are left to ITK."""
    import SimpleITK as sitk

    if len(files) < 3:
        return
    header = sitk.ImageFileReader()
    positions, normal = [], None
    for f in files:
        header.SetFileName(f)
        try:
            header.ReadImageInformation()
            pos = [float(v) for v in header.GetMetaData("0020|0032").split("\\")]
            if normal is None:
                o = [float(v) for v in header.GetMetaData("0020|0037").split("\\")]
                normal = np.cross(o[:3], o[3:])
        except (RuntimeError, ValueError):
            return
        positions.append(float(np.dot(pos, normal)))
    steps = np.abs(np.diff(np.sort(positions)))
    usual = float(np.median(steps))
    if usual > 0 and steps.max() > 1.5 * usual:
        at = int(np.argmax(steps))
        raise InputError(
            f"{path}: the DICOM series misses slices (a gap of {steps[at]:.3g} mm after slice {at + 1} "
            f"of {len(files)}, where slices are {usual:.3g} mm apart); export the complete series"
        )


def _read_dicom_series(path: Path) -> Volume:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(path))
    if len(series) > 1:
        raise InputError(f"{path}: holds {len(series)} DICOM series; give a folder with exactly one")
    files = reader.GetGDCMSeriesFileNames(str(path), series[0])
    first = sitk.ImageFileReader()
    first.SetFileName(files[0])
    try:
        first.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot read the DICOM series ({library_error_line(exc)})") from exc
    size = tuple(first.GetSize())[:2] + (len(files), max(1, first.GetNumberOfComponents()))
    check_size(path, size, "its DICOM series")
    _check_slice_gaps(path, files)
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot read the DICOM series ({library_error_line(exc)})") from exc
    return _itk_to_volume(image, "dicom", path)
