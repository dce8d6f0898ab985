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
``.mha``, gzip ``.nrrd``), truncated files, RGB / complex / structured voxel types, zero or absurd voxel
sizes, NaN / infinite voxels or magnitudes above 1e10, and paths that are link loops, pipes or unreadable. A
bit flip in the voxels of an uncompressed file cannot be detected: nothing records what they were.

Writes are atomic: data go to a temporary folder inside the target folder and are renamed into place, so
an interrupted or failed write never leaves a half-written file under the final name.

One module per concept: :mod:`~medseg3d.io.volume` (:class:`Volume`, file suffixes),
:mod:`~medseg3d.io.read` (:func:`read_volume`, DICOM series), :mod:`~medseg3d.io.checks` (limits and checks
of input files), :mod:`~medseg3d.io.write` (:func:`write_volume`) and :mod:`~medseg3d.io.atomic`
(:func:`atomic_write` and the text, JSON and CSV writers built on it). Everything is importable from
``medseg3d.io``.
"""

from .atomic import (
    atomic_write,
    remove_stale_temporaries_of,
    write_json_atomic,
    write_rows,
    write_text_atomic,
)
from .checks import DEFAULT_MAX_VOXELS, MAX_ABS_VALUE, check_path, check_values, mask_like, max_voxels
from .read import is_dicom_folder, read_volume
from .volume import (
    IMAGE_SUFFIXES,
    ITK_SUFFIXES,
    NIFTI_SUFFIXES,
    Volume,
    image_suffix,
    is_image_file,
    output_stem,
    strip_image_suffix,
)
from .write import write_volume

__all__ = [
    "DEFAULT_MAX_VOXELS",
    "IMAGE_SUFFIXES",
    "ITK_SUFFIXES",
    "MAX_ABS_VALUE",
    "NIFTI_SUFFIXES",
    "Volume",
    "atomic_write",
    "check_path",
    "check_values",
    "image_suffix",
    "is_dicom_folder",
    "is_image_file",
    "mask_like",
    "max_voxels",
    "output_stem",
    "read_volume",
    "remove_stale_temporaries_of",
    "strip_image_suffix",
    "write_json_atomic",
    "write_rows",
    "write_text_atomic",
    "write_volume",
]
