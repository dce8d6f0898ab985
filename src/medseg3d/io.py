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

Reading refuses, with one line naming the file, what would otherwise be read wrongly or crash later: a header
describing more than ``MEDSEG3D_MAX_VOXELS`` voxels (default 2^28; checked before any allocation, so a gzip
bomb costs nothing), compressed data whose CRC-32 / Adler-32 or length do not match (``.nii.gz``, compressed
``.mha``, gzip ``.nrrd``), truncated files, RGB / complex / structured voxel types, zero or absurd voxel sizes,
NaN / infinite voxels or magnitudes above 1e10, and paths that are link loops, pipes or unreadable. A bit flip
in the voxels of an uncompressed file cannot be detected: nothing records what they were.

Writes are atomic: data go to a temporary folder inside the target folder and are renamed into place, so
an interrupted or failed write never leaves a half-written file under the final name.
"""

from __future__ import annotations

import errno
import gzip
import io
import math
import os
import shutil
import stat
import tempfile
import zlib
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


# Largest image read, in voxels over all channels. The default (2^28, 1 GiB as float32) holds a 512x512x400 CT
# (105 M) and a four-channel BraTS case (36 M) with room to spare, and refuses a 1400^3 gzip bomb (2.7 G) or a
# header claiming 2^31 voxels before anything is allocated. MEDSEG3D_MAX_VOXELS raises or lowers it.
DEFAULT_MAX_VOXELS = 2**28
# Largest magnitude accepted in an image: beyond it float32 sums of squares (normalisation) overflow.
MAX_ABS_VALUE = 1e10
# Compressed streams are checked to their end; data beyond what the header describes are read (and
# discarded) up to this many bytes, so a bomb hidden after the voxels is refused without unbounded work.
_MAX_TRAILING_BYTES = 64 * 2**20
_CHUNK = 4 * 2**20


def max_voxels() -> int:
    """The voxel limit of :func:`read_volume`: ``MEDSEG3D_MAX_VOXELS`` or :data:`DEFAULT_MAX_VOXELS`."""
    text = os.environ.get("MEDSEG3D_MAX_VOXELS", "").strip()
    if not text:
        return DEFAULT_MAX_VOXELS
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value <= 0:
        raise InputError(f"MEDSEG3D_MAX_VOXELS={text!r} is not a positive whole number; set e.g. 300000000 or unset it")
    return value


def _check_size(path: Path, shape, what: str = "its header") -> None:
    dims = [int(d) for d in shape]
    if not dims or min(dims) <= 0:
        raise InputError(f"{path}: {what} describes an empty grid {tuple(dims)}; the file is broken")
    total = math.prod(dims)
    limit = max_voxels()
    if total > limit:
        raise InputError(
            f"{path}: {what} describes {' x '.join(map(str, dims))} = {total:,} voxels, over the limit of "
            f"{limit:,} (MEDSEG3D_MAX_VOXELS); crop or downsample the image, or raise the limit if it is genuine"
        )


def _check_dtype(path: Path, dtype: np.dtype, name: str | None = None) -> None:
    dtype = np.dtype(dtype)
    shown = name or str(dtype)
    if dtype.fields is not None or dtype.kind == "V":
        names = "".join(dtype.names or ())
        colour = "RGB colour" if names.upper().startswith("RGB") else "structured (multi-field)"
        raise InputError(
            f"{path}: holds {colour} voxels ({shown}); medseg3d reads grey-value images and label maps: "
            "convert it to one grey-value channel per file"
        )
    if dtype.kind == "c":
        raise InputError(f"{path}: holds complex voxels ({shown}); save the magnitude image instead")
    if dtype.kind not in "biuf" or dtype.itemsize > 8:
        raise InputError(f"{path}: voxel type {shown} is not supported; save it as integers or float32/float64")


def _check_affine(path: Path, affine: np.ndarray) -> None:
    affine = np.asarray(affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)):
        raise InputError(f"{path}: its voxel-to-world matrix holds NaN or infinite values; fix the header")
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    if np.any(spacing < 1e-4) or np.any(spacing > 1e4) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        shown = ", ".join(f"{v:g}" for v in spacing)
        raise InputError(
            f"{path}: voxel size ({shown}) mm is zero, degenerate or absurd (allowed 0.0001 to 10000 mm); "
            "fix the header's spacing"
        )


def check_values(array: np.ndarray, where: str) -> None:
    """Refuse NaN / infinite voxels and magnitudes above :data:`MAX_ABS_VALUE` (1e10).

    Negative values are legal (other pipelines write them) and pass.

    Raises:
        InputError: one line naming ``where``, the problem and what to do.
    """
    if array.size == 0:
        return
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            bad = int(array.size - np.count_nonzero(finite))
            raise InputError(f"{where}: holds {bad:,} NaN or infinite voxels; fix the file or replace them (e.g. with 0)")
    if array.dtype.kind == "f" or (array.dtype.kind in "iu" and array.dtype.itemsize == 8):
        biggest = max(abs(float(array.min())), abs(float(array.max())))
        if biggest > MAX_ABS_VALUE:
            raise InputError(
                f"{where}: holds values up to {biggest:.3g} in magnitude (limit {MAX_ABS_VALUE:g}, beyond which "
                "float32 statistics overflow); the file is broken or needs rescaling"
            )


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
        if _is_dicom_folder(path):
            vol = _read_dicom_series(path)
            if check_voxels:
                check_values(vol.array, str(path))
            return vol
        raise InputError(f"{path}: is a folder with no DICOM series; give an image file (.nii.gz, .mha, .nrrd)")
    suffix = image_suffix(path)
    if suffix == "":
        raise InputError(f"{path}: unknown image format; use .nii, .nii.gz, .mha, .mhd, .nrrd or a DICOM folder")
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
        raise InputError(f"{path}: not enough memory to read this image; free memory or lower its size") from exc
    except Exception as exc:  # nibabel/ITK raise many types; all mean "cannot read this file"
        raise InputError(
            f"{path}: cannot read this image ({_one_line(exc)}); is the file complete and valid?"
        ) from exc
    _check_affine(path, vol.affine)
    if check_voxels:
        check_values(vol.array, str(path))
    return vol


def check_path(path: Path) -> None:
    """Refuse, with one line, what is not a readable file or folder: missing, link loop, FIFO, no permission."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise InputError(f"{path}: is a broken symbolic link (to {os.readlink(path)}); fix or remove it") from None
        raise InputError(f"{path}: no such file or folder; check the path") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{path}: is a symbolic link loop; point the link at a real file") from None
        if exc.errno == errno.ENAMETOOLONG:
            raise InputError(f"{path}: the path is too long for this system; use a shorter name") from None
        raise InputError(f"{path}: cannot be opened ({exc.strerror}); check the path and its permissions") from None
    if stat.S_ISDIR(st.st_mode):
        if not os.access(path, os.R_OK | os.X_OK):
            raise InputError(f"{path}: folder cannot be read (permission denied); check its permissions")
        return
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: is not a regular file (a pipe, socket or device); give an image file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: cannot be read (permission denied); check its permissions")


def _gunzip_checked(path: Path, header_nbytes) -> bytes:
    """The decompressed bytes of a gzip file, its CRC and length checked; refuse before a bomb inflates.

    ``header_nbytes(first_bytes)`` returns the number of bytes the header describes (header + voxels),
    after checking them against the limits; decompression stops being kept beyond that.
    """
    chunks: list[bytes] = []
    try:
        with gzip.open(path, "rb") as fh:
            head = fh.read(1024)
            needed = header_nbytes(head)
            chunks.append(head)
            kept = len(head)
            while kept < needed:
                chunk = fh.read(min(_CHUNK, needed - kept))
                if not chunk:
                    raise InputError(
                        f"{path}: cannot read this image: it is truncated ({kept:,} of the {needed:,} bytes its "
                        "header describes); copy or download the file again"
                    )
                chunks.append(chunk)
                kept += len(chunk)
            trailing = 0
            while True:  # read to the end of the stream so that gzip checks the CRC and length
                chunk = fh.read(_CHUNK)
                if not chunk:
                    break
                trailing += len(chunk)
                if trailing > _MAX_TRAILING_BYTES:
                    raise InputError(
                        f"{path}: cannot read this image: over {_MAX_TRAILING_BYTES >> 20} MB of data follow the "
                        "voxels its header describes; the file is broken"
                    )
    except InputError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(
            f"{path}: cannot read this image: its compressed data are corrupt or incomplete ({_one_line(exc)}); "
            "copy or download the file again (gzip -t checks it)"
        ) from exc
    return b"".join(chunks)


def _nifti_header(path: Path, head: bytes):
    import nibabel as nib

    if len(head) < 4:
        raise InputError(f"{path}: cannot read this image: it is too short to hold a NIfTI header")
    sizes = {int.from_bytes(head[:4], "little"), int.from_bytes(head[:4], "big")}
    klass = nib.Nifti2Header if 540 in sizes else nib.Nifti1Header
    if not sizes & {348, 540}:
        raise InputError(f"{path}: cannot read this image: it is not a NIfTI file (no NIfTI header); check the file")
    need = klass.sizeof_hdr
    if len(head) < need:
        raise InputError(f"{path}: cannot read this image: it is truncated inside its NIfTI header")
    # check=False: nibabel would quietly set a zero voxel size to 1 mm; _nifti_nbytes refuses it instead
    return klass.from_fileobj(io.BytesIO(head[:need]), check=False)


def _nifti_nbytes(path: Path, header) -> int:
    """Bytes the header describes (offset + voxels), after checking its grid and voxel type."""
    _check_dtype(path, header.get_data_dtype(), _nifti_dtype_name(header))
    shape = header.get_data_shape()
    _check_size(path, shape)
    zooms = np.asarray(header["pixdim"][1 : 1 + min(3, len(shape))], dtype=np.float64)
    if int(header["sform_code"]) == 0 and (not np.all(np.isfinite(zooms)) or np.any(zooms == 0)):
        shown = ", ".join(f"{v:g}" for v in zooms)
        raise InputError(f"{path}: its header gives voxel size ({shown}) mm, zero or not finite, and no sform "
                         "matrix; fix the header's pixdim")
    offset = int(header.get_data_offset())
    if offset < 0:
        raise InputError(f"{path}: cannot read this image: negative data offset in its header; the file is broken")
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
            raise InputError(f"{path}: cannot read this image: it is not gzip-compressed although named .nii.gz; "
                             "rename it to .nii if it is an uncompressed NIfTI file")
        data = _gunzip_checked(path, lambda head: _nifti_nbytes(path, _nifti_header(path, head)))
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
                f"{path}: cannot read this image: it is truncated ({size:,} of the {needed:,} bytes its header "
                "describes); copy or download the file again"
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
    return Volume(np.ascontiguousarray(array), _LPS_TO_RAS @ lps, {"format": fmt})


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
    _check_size(path, tuple(reader.GetSize()) + (max(1, reader.GetNumberOfComponents()),))
    suffix = image_suffix(path)
    if suffix in (".mha", ".mhd"):
        _check_metaimage_data(path)
    elif suffix in (".nrrd", ".nhdr"):
        _check_nrrd_data(path)
    return _itk_to_volume(reader.Execute(), "itk", path)


def _header_fields(text: str, sep: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        if sep in line:
            key, value = line.split(sep, 1)
            fields[key.strip().lower()] = value.strip()
    return fields


def _check_stream(path: Path, data_path: Path, offset: int, wbits: int) -> None:
    """Decompress (and discard) a zlib / gzip stream to its end so that its checksum and length are verified."""
    inflater = zlib.decompressobj(wbits)
    try:
        with open(data_path, "rb") as fh:
            fh.seek(offset)
            while not inflater.eof:
                chunk = fh.read(_CHUNK)
                if not chunk:
                    raise InputError(
                        f"{path}: cannot read this image: its compressed data end early (truncated); copy or "
                        "download the file again"
                    )
                data = inflater.decompress(chunk, _CHUNK)
                while inflater.unconsumed_tail and not inflater.eof:
                    data = inflater.decompress(inflater.unconsumed_tail, _CHUNK)
                del data
    except zlib.error as exc:
        raise InputError(
            f"{path}: cannot read this image: its compressed data are corrupt ({exc}); copy or download the file again"
        ) from exc


def _check_metaimage_data(path: Path) -> None:
    """For a compressed MetaImage, verify the zlib stream (Adler-32) to its end; ITK does not always."""
    with open(path, "rb") as fh:
        head = fh.read(65536)
    end = head.find(b"ElementDataFile")
    if end < 0:
        return
    line_end = head.find(b"\n", end)
    if line_end < 0:
        return
    fields = _header_fields(head[: line_end + 1].decode("latin-1"), "=")
    if fields.get("compresseddata", "").lower() != "true":
        return
    data_file = fields.get("elementdatafile", "")
    if data_file.upper() == "LOCAL":
        _check_stream(path, path, line_end + 1, zlib.MAX_WBITS | 32)
    elif data_file and " " not in data_file and (path.parent / data_file).is_file():
        _check_stream(path, path.parent / data_file, 0, zlib.MAX_WBITS | 32)


def _check_nrrd_data(path: Path) -> None:
    """For a gzip-encoded NRRD, verify the gzip stream (CRC and length) to its end."""
    with open(path, "rb") as fh:
        head = fh.read(65536)
    end = head.find(b"\n\n")
    text = head[: end if end >= 0 else len(head)].decode("latin-1")
    fields = _header_fields(text, ":")
    if fields.get("encoding", "").lower() not in ("gzip", "gz"):
        return
    data_file = fields.get("data file") or fields.get("datafile")
    if data_file:
        if " " not in data_file and (path.parent / data_file).is_file():
            _check_stream(path, path.parent / data_file, 0, zlib.MAX_WBITS | 16)
    elif end >= 0:
        _check_stream(path, path, end + 2, zlib.MAX_WBITS | 16)


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
        raise InputError(f"{path}: cannot read the DICOM series ({_one_line(exc)})") from exc
    size = tuple(first.GetSize())[:2] + (len(files), max(1, first.GetNumberOfComponents()))
    _check_size(path, size, "its DICOM series")
    reader.SetFileNames(files)
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


def atomic_write(
    path: str | os.PathLike, write, previous: str | os.PathLike | None = None, suffix: str = ".tmp"
) -> Path:
    """Run ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``: the one home of
    the temp-file-and-rename write, so no reader ever sees a half-written file.

    Args:
        path: the file to write; its folder is created.
        write: called with the temporary file's name (a str); writes the whole content there.
        previous: when given, an existing ``path`` is first renamed to it (the last good version stays until
            the new one is complete; a process killed between the two renames leaves ``previous`` only).
        suffix: of the temporary file (``.{name}.XXXX{suffix}``), for writers that read the format from it
            (``".tmp.png"`` for matplotlib).

    The result gets the permissions of any new file (umask), not mkstemp's private 0600. The temporary file
    is removed on any failure (a full disk, an interrupt) and the error raised as it came.

    Example:
        >>> atomic_write(folder / "notes.txt", lambda tmp: Path(tmp).write_text("done"))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_write`."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json_atomic(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON (UTF-8) to ``path`` through a temporary file and a rename."""
    import json

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_rows(rows, path: str | os.PathLike) -> Path:
    """Write one CSV row per dict (columns in order of first appearance) atomically; floats to 6 digits."""
    import csv

    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

    return atomic_write(path, write)
