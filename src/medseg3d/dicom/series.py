"""Cheap questions about DICOM series folders, asked while a case folder's channels are identified.

:func:`medseg3d.io.read_volume` reads a series; these helpers only look at a few headers, so that finding
the cases of a dataset stays fast: :func:`looks_like_dicom_series` opens at most a few files' first bytes,
and :func:`series_description` reads one header (no pixel data).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..io import image_suffix

_DICOM_SUFFIXES = (".dcm", ".ima", ".dicom")
_FILES_LOOKED_AT = 3
_PREAMBLE = 128  # a DICOM Part-10 file: 128 bytes of preamble, then b"DICM"


def _visible_files(folder: Path):
    return (f for f in folder.iterdir() if not f.name.startswith(".") and f.is_file())


def _is_dicom_file(path: Path) -> bool:
    if path.name.lower().endswith(_DICOM_SUFFIXES):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(_PREAMBLE + 4)
    except OSError:
        return False
    return head[_PREAMBLE:] == b"DICM"


def looks_like_dicom_series(folder: str | Path) -> bool:
    """True when ``folder``'s first files are DICOM files (by suffix or the ``DICM`` marker).

    A folder that holds an image file (``.nii.gz``, ``.mha``...) is not a series folder. Only the first
    few files are opened; whether the series is readable is for :func:`medseg3d.io.read_volume` to say.
    """
    folder = Path(folder)
    seen = 0
    try:
        with os.scandir(folder) as it:  # no stat per entry: this runs on every case folder of a dataset
            for entry in it:
                if seen >= _FILES_LOOKED_AT:
                    break
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                if image_suffix(entry.name) or not _is_dicom_file(Path(entry.path)):
                    return False
                seen += 1
    except OSError:
        return False
    return seen > 0


def series_description(folder: str | Path) -> str | None:
    """The SeriesDescription (0008,103E) of a series folder, from the first file that has one, or ``None``."""
    import SimpleITK as sitk

    folder = Path(folder)
    reader = sitk.ImageFileReader()
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # GDCM warns on stderr about odd but readable files
    try:
        for n, f in enumerate(sorted(_visible_files(folder))):
            if n >= _FILES_LOOKED_AT:
                break
            reader.SetFileName(str(f))
            try:
                reader.ReadImageInformation()
            except RuntimeError:
                continue
            if reader.HasMetaDataKey("0008|103e"):
                text = reader.GetMetaData("0008|103e").strip()
                if text:
                    return text
    except OSError:
        return None
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)
    return None
