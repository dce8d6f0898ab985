"""Reading and writing medical image volumes.

One in-memory type, :class:`Volume`, whatever the file format:

* ``array`` is indexed ``[i, j, k]`` (``[i, j, k, c]`` for multi-channel files), the voxel order of NIfTI.
  For a BraTS file that is ``(240, 240, 155)``. MetaImage / NRRD / DICOM data, which SimpleITK returns as
  ``(z, y, x)``, are transposed into the same ``(x, y, z)`` order.
* ``affine`` is the 4x4 matrix from voxel indices ``(i, j, k, 1)`` to world coordinates in millimetres in
  the RAS+ convention of NIfTI/nibabel. ITK's LPS origin and direction are converted on read and back on
  write, so a NIfTI written from an MHA file describes the same physical grid.
* ``meta`` keeps what a faithful write-back needs (the NIfTI header, the source format).

Formats: NIfTI (``.nii``, ``.nii.gz``) through nibabel; MetaImage (``.mha``, ``.mhd``), NRRD (``.nrrd``,
``.nhdr``) and DICOM series folders (read only) through SimpleITK.

Writes are atomic: data go to a temporary folder inside the target folder and are renamed into place, so
an interrupted or failed write never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError

NIFTI_SUFFIXES = (".nii.gz", ".nii")
ITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")
_DETACHED_SUFFIXES = (".mhd", ".nhdr")  # header + separate data file
IMAGE_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class Volume:
    """A volume: voxel array in (x, y, z[, c]) order plus its voxel-to-world (RAS+, mm) affine.

    Args:
        array: the voxels, indexed ``[i, j, k]`` or ``[i, j, k, c]``.
        affine: 4x4 voxel-to-world matrix (RAS+, millimetres).
        meta: format details used when writing back (``"format"``, ``"nifti_header"``).

    Example:
        >>> vol = read_volume("case_flair.nii.gz")
        >>> vol.shape, vol.spacing, vol.axcodes
        ((240, 240, 155), (1.0, 1.0, 1.0), ('L', 'P', 'S'))
    """

    array: np.ndarray
    affine: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise InputError(f"affine must be 4x4, got {self.affine.shape}")
        if self.array.ndim not in (3, 4):
            raise InputError(f"a volume must be 3D (x, y, z) or 4D (x, y, z, c), got shape {self.array.shape}")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.array.shape[:3])

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along i, j, k (norms of the affine's columns)."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def origin(self) -> tuple[float, float, float]:
        """World (RAS) position of voxel (0, 0, 0)."""
        return tuple(float(v) for v in self.affine[:3, 3])

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix of unit axis directions (columns), RAS."""
        return self.affine[:3, :3] / np.asarray(self.spacing)[None, :]

    @property
    def axcodes(self) -> tuple[str, str, str]:
        import nibabel as nib

        return tuple(nib.aff2axcodes(self.affine))

    def with_array(self, array: np.ndarray) -> Volume:
        """The same grid and metadata with other voxels (e.g. a label map for this image)."""
        if tuple(array.shape[:3]) != self.shape:
            raise InputError(f"array shape {array.shape[:3]} does not match the volume grid {self.shape}")
        return Volume(array, self.affine.copy(), dict(self.meta))

    def same_grid(self, other: Volume, atol: float = 1e-3) -> bool:
        """True when both volumes have the same shape and (to ``atol`` mm) the same affine."""
        return self.shape == other.shape and np.allclose(self.affine, other.affine, atol=atol)


def image_suffix(path: str | os.PathLike) -> str:
    """The recognised image suffix of ``path`` (``".nii.gz"``, ``".mha"``...), or ``""``."""
    name = str(path).lower()
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return ""


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).is_file() and image_suffix(path) != ""


def _one_line(exc: BaseException) -> str:
    """The informative line of a library error (ITK puts a source location on the first line)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if "ERROR:" in ln:
            return ln.split("ERROR:", 1)[1].strip()
    return lines[0] if lines else type(exc).__name__


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


_is_dicom_folder = is_dicom_folder


def read_volume(path: str | os.PathLike) -> Volume:
    """Read a NIfTI, MetaImage, NRRD file or a DICOM series folder into a :class:`Volume`.

    Raises:
        InputError: missing path, unknown format, or unreadable file (one line, no traceback needed).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder; check the path")
    if path.is_dir():
        if _is_dicom_folder(path):
            return _read_dicom_series(path)
        raise InputError(f"{path}: is a folder with no DICOM series; give an image file (.nii.gz, .mha, .nrrd)")
    suffix = image_suffix(path)
    try:
        if suffix in NIFTI_SUFFIXES:
            return _read_nifti(path)
        if suffix in ITK_SUFFIXES:
            return _read_itk(path)
    except InputError:
        raise
    except Exception as exc:  # nibabel/ITK raise many types; all mean "cannot read this file"
        raise InputError(
            f"{path}: cannot read this image ({_one_line(exc)}); is the file complete and valid?"
        ) from exc
    raise InputError(f"{path}: unknown image format; use .nii, .nii.gz, .mha, .mhd, .nrrd or a DICOM folder")


def _read_nifti(path: Path) -> Volume:
    import nibabel as nib

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
    return Volume(np.ascontiguousarray(array), _LPS_TO_RAS @ lps, {"format": fmt})


def _read_itk(path: Path) -> Volume:
    import SimpleITK as sitk

    return _itk_to_volume(sitk.ReadImage(str(path)), "itk", path)


def _read_dicom_series(path: Path) -> Volume:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(path))
    if len(series) > 1:
        raise InputError(f"{path}: holds {len(series)} DICOM series; give a folder with exactly one")
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path), series[0]))
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot read the DICOM series ({_one_line(exc)})") from exc
    return _itk_to_volume(image, "dicom", path)


def write_volume(volume: Volume, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write ``volume`` to ``path``; the format follows the suffix. The write is atomic.

    A NIfTI header kept from reading (``volume.meta["nifti_header"]``) is reused, so reading and writing
    a NIfTI file gives back the same header fields; only the data type follows the array. Formats with a
    separate data file (``.mhd``, ``.nhdr``) are written under their final names in a temporary folder
    beside ``path`` and moved into place data first, header last.

    Raises:
        InputError: unknown suffix, existing file with ``overwrite=False``, or a folder that cannot be written.
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
            _write_nifti(array, volume, tmp)
        else:
            _write_itk(array, volume, tmp)
        # detached data files first, the file named by ``path`` last: it appears only when complete
        for f in sorted(tmp_dir.iterdir(), key=lambda f: f.name == path.name):
            os.replace(f, path.parent / f.name)
    except InputError:
        raise
    except Exception as exc:  # disk full, permissions, a dtype the format cannot hold...
        raise InputError(f"{path}: cannot write the image ({_one_line(exc)}); check the folder and the data") from exc
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path


def _write_nifti(array: np.ndarray, volume: Volume, path: Path) -> None:
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


def _write_itk(array: np.ndarray, volume: Volume, path: Path) -> None:
    import SimpleITK as sitk

    if array.ndim == 4:
        image = sitk.GetImageFromArray(np.transpose(array, (2, 1, 0, 3)), isVector=True)
    else:
        image = sitk.GetImageFromArray(np.transpose(array, (2, 1, 0)))
    lps = np.linalg.inv(_LPS_TO_RAS) @ volume.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(v) for v in (lps[:3, :3] / spacing[None, :]).ravel()))
    image.SetOrigin(tuple(float(v) for v in lps[:3, 3]))
    sitk.WriteImage(image, str(path), useCompression=True)
