"""Writing a :class:`Volume` as NIfTI (nibabel) or MetaImage / NRRD (SimpleITK), atomically.

Data go to a temporary folder inside the target folder and are renamed into place, so an interrupted or
failed write never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import InputError
from .checks import library_error_line
from .volume import LPS_TO_RAS, NIFTI_SUFFIXES, Volume, image_suffix


def write_volume(volume: Volume, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write ``volume`` to ``path``; the format follows the suffix. The write is atomic.

    A NIfTI header kept from reading (``volume.meta["nifti_header"]``) is reused, so reading and writing
    a NIfTI file gives back the same header fields; only the data type follows the array. Formats with a
    separate data file (``.mhd``, ``.nhdr``) are written under their final names in a temporary folder
    beside ``path`` and moved into place data first, header last.

    Args:
        volume: the image (array (X, Y[, Z][, C]) and RAS affine).
        path: the file; its suffix chooses the format.
        overwrite: whether an existing file may be replaced.

    Returns:
        The path.

    Raises:
        InputError: unknown suffix, existing file with ``overwrite=False``, or a folder that cannot be
            written.
    """
    path = Path(path)
    suffix = image_suffix(path)
    if suffix == "":
        raise InputError(f"{path}: unknown output format; end the name in .nii.gz, .nii, .mha, .mhd or .nrrd")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name ending in {suffix}")
    if path.exists() and not overwrite:
        raise InputError(f"{path}: exists already; remove it or pass --force to overwrite")
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: output folder does not exist; create it first")
    if not os.access(path.parent, os.W_OK):
        raise InputError(f"{path.parent}: output folder is not writable; choose another output path")
    array = volume.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    elif array.dtype == np.int64:
        array = array.astype(np.int32)
    elif array.dtype == np.float16:  # neither NIfTI nor ITK stores half floats
        array = array.astype(np.float32)
    try:
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise InputError(
            f"{path.parent}: output folder is not writable ({exc.strerror}); choose another output path"
        ) from exc
    try:
        tmp = tmp_dir / path.name
        if suffix in NIFTI_SUFFIXES:
            write_nifti(array, volume, tmp)
        else:
            write_itk(array, volume, tmp)
        # detached data files first, the file named by ``path`` last: it appears only when complete
        for f in sorted(tmp_dir.iterdir(), key=lambda f: f.name == path.name):
            os.replace(f, path.parent / f.name)
    except InputError:
        raise
    except Exception as exc:  # disk full, permissions, a dtype the format cannot hold...
        raise InputError(
            f"{path}: cannot write the image ({library_error_line(exc)}); check the folder and the data"
        ) from exc
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path


def write_nifti(array: np.ndarray, volume: Volume, path: Path) -> None:
    """Write ``array`` on ``volume``'s grid as NIfTI, reusing its header; not atomic (see
    :func:`write_volume`).

    Args:
        array: the voxels to write (the header's data type follows them).
        volume: the grid (affine) and the header kept from reading, if any.
        path: the file.
    """
    import nibabel as nib

    header = volume.meta.get("nifti_header")
    if header is not None:
        header = header.copy()
        header.set_data_dtype(array.dtype)
        img = nib.Nifti1Image(array, volume.affine, header=header)
        # keep the source's q/s-form codes (nibabel resets them when an affine is passed)
        img.set_qform(volume.affine, int(header["qform_code"]))
        img.set_sform(volume.affine, int(header["sform_code"]))
        if array.dtype.kind in "iu":
            img.header.set_slope_inter(np.nan, np.nan)
    else:
        img = nib.Nifti1Image(array, volume.affine)
        img.set_qform(volume.affine, 1)
        img.set_sform(volume.affine, 1)
    nib.save(img, str(path))


def write_itk(array: np.ndarray, volume: Volume, path: Path) -> None:
    """Write ``array`` on ``volume``'s grid through SimpleITK (LPS, compressed); not atomic.

    Args:
        array: the voxels, (X, Y, Z) or (X, Y, Z, C) (a vector image).
        volume: the grid (RAS affine).
        path: the file; its suffix chooses the format (.mha, .mhd, .nrrd, ...).
    """
    import SimpleITK as sitk

    if array.ndim == 4:
        image = sitk.GetImageFromArray(np.transpose(array, (2, 1, 0, 3)), isVector=True)
    else:
        image = sitk.GetImageFromArray(np.transpose(array, (2, 1, 0)))
    lps = np.linalg.inv(LPS_TO_RAS) @ volume.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(v) for v in (lps[:3, :3] / spacing[None, :]).ravel()))
    image.SetOrigin(tuple(float(v) for v in lps[:3, 3]))
    sitk.WriteImage(image, str(path), useCompression=True)
