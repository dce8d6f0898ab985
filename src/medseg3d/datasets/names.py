"""Modality and label names: what a file, folder or DICOM SeriesDescription says it holds."""

from __future__ import annotations

import functools
import re

from ..errors import InputError
from ..io import strip_image_suffix

BRATS_MODALITIES = ("flair", "t1", "t1ce", "t2")
CT_NAMES = ("ct",)
"""Channel names (lower case) that are CT: intensities on an absolute scale (Hounsfield units), never
shifted or z-scored as MR magnitude images are."""
MODALITY_ALIASES = {
    "t1c": "t1ce",
    "t1gd": "t1ce",
    "t1ce": "t1ce",
    "flair": "flair",
    "t1": "t1",
    "t2": "t2",
    # BraTS 2023+ names (T2-FLAIR, native T1, contrast T1, T2-weighted) and MSD's T1w / T2w
    "t2f": "flair",
    "t1n": "t1",
    "t2w": "t2",
    "t1w": "t1",
}
# Names that say a file's modality when they END a file or folder name (after the case id): one word, or
# two joined by "_" ("t1_post", "post_gd"). Words are split at "_", "-", ".", and spaces; "t1+c" is one word.
NAME_MODALITY = {
    **MODALITY_ALIASES,
    "fla": "flair",
    "t2flair": "flair",
    "t2_flair": "flair",
    "t1_native": "t1",
    "t1native": "t1",
    "t1_pre": "t1",
    "t1pre": "t1",
    "native": "t1",
    "t1_post": "t1ce",
    "t1post": "t1ce",
    "post": "t1ce",
    "post_gd": "t1ce",
    "t1+c": "t1ce",
    "t1+gd": "t1ce",
    "t1_contrast": "t1ce",
    "t1_gd": "t1ce",
    "t1_ce": "t1ce",
    "t1ce_gd": "t1ce",
}
# Names that identify a modality wherever they stand in a file name ("flair_brain.nii.gz"), when no other
# such name is there; shorter words ("post", "native") are trusted only at the end, after the case id.
_STRONG_NAMES = {
    k: v for k, v in NAME_MODALITY.items() if "_" not in k and k not in ("post", "native", "fla")
}
_LABEL_NAMES = {"seg", "label", "labels", "truth", "ot", "gt", "segmentation"}
# known companions of the channels that are not channels (a brain mask beside the images)
_IGNORED_NAMES = {"mask", "brainmask", "brain_mask"}


# The file order of nnU-Net's own BraTS 2021 conversion (Dataset137_BraTS2021): _0000 T1, _0001 T1ce,
# _0002 T2, _0003 FLAIR; taken when an nnU-Net folder of four channels comes without its dataset.json.
NNUNET_BRATS_ORDER = ("t1", "t1ce", "t2", "flair")
FLAGS = "--flair --t1 --t1ce --t2"


def normalise_modalities(modalities) -> tuple[str, ...]:
    """``"flair,t1c"`` or ``["FLAIR", "T1c"]`` -> ``("flair", "t1ce")``.

    Aliases: t1c/t1gd -> t1ce, t1n/t1w -> t1, t2w -> t2, t2f -> flair (BraTS 2023 and MSD names).
    """
    if isinstance(modalities, str):
        modalities = [m for m in modalities.split(",") if m.strip()]
    out = tuple(MODALITY_ALIASES.get(m.strip().lower(), m.strip()) for m in modalities)
    if not out:
        raise InputError("no modalities given; e.g. --modalities flair,t1,t1ce,t2")
    if len(set(out)) != len(out):
        raise InputError(f"modalities {list(out)} repeat a channel; list each once")
    return out


_WORD = re.compile(r"[^\s_\-.]+")


def name_words(text: str) -> list[str]:
    """The lower-case words (letters and digits) of a name."""
    return [w.lower() for w in _WORD.findall(text)]


@functools.lru_cache(maxsize=65536)  # find_cases is called often, on the same names
def identify_name(name: str, descriptive: bool = False) -> tuple[str | None, str]:
    """What a file or folder name says it holds, and the name without that part (the case id, usually).

    The modality is read from the end of the name (``Brats18_x_t1ce``, ``BraTS-GLI-00001-000-t1n``,
    ``t1_post``, ``post_gd``), else from a name that says it anywhere (``flair_brain``).

    Args:
        name: the file or folder name (an image suffix is stripped).
        descriptive: also read free text such as a DICOM SeriesDescription or a series folder name
            (``AX T1 POST GD``, ``Sag T2 FLAIR``).

    Returns:
        ``(what, prefix)``; ``what`` is a modality (``"flair"``, ``"t1"``, ``"t1ce"``, ``"t2"``),
        ``"label"``, ``"ignore"`` (a brain mask) or ``None`` (not recognised).

    Example:
        >>> identify_name("BraTS-GLI-00001-000-t2f.nii.gz")
        ('flair', 'BraTS-GLI-00001-000')
    """
    stem = strip_image_suffix(name)
    spans = list(_WORD.finditer(stem))
    words = [m.group().lower() for m in spans]
    if descriptive:  # all the words count: "T1 FLAIR" is neither FLAIR nor plain T1, so it stays unrecognised
        what = _modality_from_description(words)
        if what is not None:
            return what, stem
    for n in (2, 1):  # "t1_native" before "native"
        if len(words) < n:
            continue
        key = "_".join(words[-n:])
        what = NAME_MODALITY.get(key) or (
            "label" if key in _LABEL_NAMES else "ignore" if key in _IGNORED_NAMES else None
        )
        if what in ("label", "ignore") or (what and not descriptive):
            return what, stem[: spans[-n].start()].rstrip("_-. ")
    strong = {_STRONG_NAMES[w] for w in words if w in _STRONG_NAMES}
    if len(strong) == 1 and not descriptive:
        return strong.pop(), stem
    return None, stem


def _modality_from_description(words: list[str]) -> str | None:
    """A modality from free text (``AX T1 POST GD``), or ``None`` when the words do not settle it."""
    w = set(words)
    flair = w & {"flair", "t2f", "fla", "t2flair"}
    t1 = w & {"t1", "t1w", "t1n", "t1c", "t1ce", "t1gd", "t1+c", "t1post", "t1pre", "mprage", "spgr", "bravo"}
    t2 = w & {"t2", "t2w", "t2flair"}
    contrast = bool(
        w
        & {
            "post",
            "gd",
            "gad",
            "gado",
            "gadolinium",
            "ce",
            "c",
            "+c",
            "c+",
            "contrast",
            "t1c",
            "t1ce",
            "t1gd",
            "t1+c",
            "t1post",
            "postcontrast",
        }
    )
    pre = bool(w & {"pre", "native", "t1n", "t1pre", "precontrast"})
    if flair:
        return None if t1 and not t2 else "flair"  # T1-FLAIR is a T1-weighted sequence: let the user say
    if t2 and not t1:
        return None if contrast else "t2"
    if t1 or contrast:
        if t2 or (contrast and pre):
            return None
        return "t1ce" if contrast else "t1"
    return None
