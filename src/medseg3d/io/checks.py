"""Checks of input files before and while they are read: size limits, voxel types, affines, values, paths,
and compressed streams verified to their end (CRC-32 / Adler-32 and length).

Each refuses, with one line naming the file (:class:`~medseg3d.errors.InputError`), what would otherwise be
read wrongly or crash later.
"""

from __future__ import annotations

import errno
import gzip
import math
import os
import stat
import zlib
from pathlib import Path

import numpy as np

from ..errors import InputError


def library_error_line(exc: BaseException) -> str:
    """The informative line of a library error (ITK puts a source location on the first line)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if "ERROR:" in ln:
            return ln.split("ERROR:", 1)[1].strip()
    return lines[0] if lines else type(exc).__name__


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
        raise InputError(
            f"MEDSEG3D_MAX_VOXELS={text!r} is not a positive whole number; set e.g. 300000000 or unset it"
        )
    return value


def check_size(path: Path, shape, what: str = "its header") -> None:
    """Refuse an empty grid or one over :func:`max_voxels`, before anything is allocated.

    Args:
        path: the file, for the message.
        shape: the grid's dimensions as the header says.
        what: what described them, for the message.

    Raises:
        InputError: a zero dimension, or more voxels than the limit (MEDSEG3D_MAX_VOXELS).
    """
    dims = [int(d) for d in shape]
    if not dims or min(dims) <= 0:
        raise InputError(f"{path}: {what} describes an empty grid {tuple(dims)}; the file is broken")
    total = math.prod(dims)
    limit = max_voxels()
    if total > limit:
        raise InputError(
            f"{path}: {what} describes {' x '.join(map(str, dims))} = {total:,} voxels, over the limit of "
            f"{limit:,} (MEDSEG3D_MAX_VOXELS); crop or downsample the image, "
            "or raise the limit if it is genuine"
        )


def check_dtype(path: Path, dtype: np.dtype, name: str | None = None) -> None:
    """Refuse RGB, structured, complex and other voxel types that are not plain integers or floats.

    Args:
        path: the file, for the message.
        dtype: the voxel type.
        name: the type as the file names it (None: numpy's name).

    Raises:
        InputError: a voxel type medseg3d cannot read.
    """
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
        raise InputError(
            f"{path}: voxel type {shown} is not supported; save it as integers or float32/float64"
        )


def check_affine(path: Path, affine: np.ndarray) -> None:
    """Refuse a non-finite voxel-to-world matrix and a zero, degenerate or absurd voxel size.

    Args:
        path: the file, for the message.
        affine: its 4x4 voxel-to-world matrix.

    Raises:
        InputError: NaN or infinite entries, or a voxel size outside 0.0001 to 10000 mm or a singular matrix.
    """
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


MASK_MAX_VALUES = 8  # an image with this few distinct values is a mask or a label map, not a scan


def mask_like(array: np.ndarray) -> str | None:
    """``"only the values 0, 1"`` when ``array`` holds at most :data:`MASK_MAX_VALUES` distinct values (a
    brain mask, a segmentation, a thresholded map given as a scan), else ``None``. A real MR scan, even an
    8-bit one, holds dozens of grey values inside the head; a sample is looked at first, so a scan costs
    little."""
    if array.size == 0:
        return None
    if np.unique(array.reshape(-1)[:: max(1, array.size // 100_000)]).size > MASK_MAX_VALUES:
        return None
    values = np.unique(array)
    if values.size > MASK_MAX_VALUES:
        return None
    return "only the values " + ", ".join(f"{v:g}" for v in values)


def check_values(array: np.ndarray, where: str) -> None:
    """Refuse NaN / infinite voxels and magnitudes above :data:`MAX_ABS_VALUE` (1e10).

    Negative values are legal (other pipelines write them) and pass.

    Args:
        array: the voxels (an empty array passes).
        where: the file, for the message.

    Raises:
        InputError: one line naming ``where``, the problem and what to do.
    """
    if array.size == 0:
        return
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            bad = int(array.size - np.count_nonzero(finite))
            raise InputError(
                f"{where}: holds {bad:,} NaN or infinite voxels; fix the file or replace them (e.g. with 0)"
            )
    if array.dtype.kind == "f" or (array.dtype.kind in "iu" and array.dtype.itemsize == 8):
        biggest = max(abs(float(array.min())), abs(float(array.max())))
        if biggest > MAX_ABS_VALUE:
            raise InputError(
                f"{where}: holds values up to {biggest:.3g} in magnitude (limit {MAX_ABS_VALUE:g}, beyond "
                "which float32 statistics overflow); the file is broken or needs rescaling"
            )


def check_path(path: Path) -> None:
    """Refuse, with one line, what is not a readable file or folder: missing, link loop, FIFO, no
    permission."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise InputError(
                f"{path}: is a broken symbolic link (to {os.readlink(path)}); fix or remove it"
            ) from None
        raise InputError(f"{path}: no such file or folder; check the path") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{path}: is a symbolic link loop; point the link at a real file") from None
        if exc.errno == errno.ENAMETOOLONG:
            raise InputError(f"{path}: the path is too long for this system; use a shorter name") from None
        raise InputError(
            f"{path}: cannot be opened ({exc.strerror}); check the path and its permissions"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        if not os.access(path, os.R_OK | os.X_OK):
            raise InputError(f"{path}: folder cannot be read (permission denied); check its permissions")
        return
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: is not a regular file (a pipe, socket or device); give an image file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: cannot be read (permission denied); check its permissions")


def gunzip_checked(path: Path, header_nbytes) -> bytes:
    """The decompressed bytes of a gzip file, its CRC and length checked; refuse before a bomb inflates.

    Args:
        path: the gzip file.
        header_nbytes: ``header_nbytes(first_bytes)`` returns the number of bytes the header describes
            (header + voxels), after checking them against the limits; decompression stops being kept beyond
            that.

    Raises:
        InputError: the data are truncated, corrupt, or followed by too much trailing data (and whatever
            ``header_nbytes`` raises).
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
                        f"{path}: cannot read this image: it is truncated ({kept:,} of the {needed:,} bytes "
                        "its header describes); copy or download the file again"
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
                        f"{path}: cannot read this image: over {_MAX_TRAILING_BYTES >> 20} MB of data follow "
                        "the voxels its header describes; the file is broken"
                    )
    except InputError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(
            f"{path}: cannot read this image: its compressed data are corrupt or incomplete "
            f"({library_error_line(exc)}); copy or download the file again (gzip -t checks it)"
        ) from exc
    return b"".join(chunks)


def _header_fields(text: str, sep: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        if sep in line:
            key, value = line.split(sep, 1)
            fields[key.strip().lower()] = value.strip()
    return fields


def _check_stream(path: Path, data_path: Path, offset: int, wbits: int) -> None:
    """Decompress (and discard) a zlib / gzip stream to its end so that its checksum and length are
    verified."""
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
            f"{path}: cannot read this image: its compressed data are corrupt ({exc}); "
            "copy or download the file again"
        ) from exc


def check_metaimage_data(path: Path) -> None:
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


def check_nrrd_data(path: Path) -> None:
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
