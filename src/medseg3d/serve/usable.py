"""Which received series the node can use: MR images as acquired. Localisers, other modalities, derived
series (reformats, maps, our own SEG coming back) and non-image objects are left out, each with a reason."""

from __future__ import annotations

import re
from pathlib import Path

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
# words a scanner puts in the description of a planning scan
_LOCALISER = re.compile(
    r"\b(loc|locali[sz]er|scout|survey|3[- ]?plane|tri[- ]?pilot|aahead)\b", re.IGNORECASE
)
_MIN_SLICES = 3  # fewer images cannot make a volume the pipeline can register


def unusable_reason(ds) -> str | None:
    """Why an instance (its header: a pydicom Dataset) cannot be one of the MR sequences, or None."""
    sop = str(ds.get("SOPClassUID", ""))
    modality = str(ds.get("Modality", "")) or "none"
    if modality != "MR":
        return f"modality {modality}, not MR"
    if sop != MR_IMAGE_STORAGE:
        return f"SOP class {sop or 'missing'} is not a single-frame MR image"
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    description = str(ds.get("SeriesDescription", ""))
    if "LOCALIZER" in image_type or _LOCALISER.search(description.replace("_", " ")):
        return "localiser"
    if image_type and image_type[0] == "DERIVED":
        return f"derived series (ImageType {'/'.join(image_type)})"
    return None


def usable_series(series_dirs: list[Path]) -> tuple[list[Path], list[str]]:
    """The series folders that can be sequences, and one note per folder left out (``"<uid> 'desc': why"``).

    Each series is judged by its first file's header and its number of images.
    """
    import pydicom

    kept, notes = [], []
    for folder in series_dirs:
        files = sorted(folder.glob("*.dcm"))
        try:
            ds = pydicom.dcmread(files[0], stop_before_pixels=True)
        except (IndexError, OSError, ValueError, EOFError, pydicom.errors.InvalidDicomError) as exc:
            notes.append(f"series {folder.name}: left out, unreadable ({type(exc).__name__})")
            continue
        reason = unusable_reason(ds)
        if reason is None and len(files) < _MIN_SLICES:
            reason = f"{len(files)} image(s), too few for a volume"
        if reason is None:
            kept.append(folder)
        else:
            notes.append(f"series {folder.name} '{ds.get('SeriesDescription', '')}': left out, {reason}")
    return kept, notes
