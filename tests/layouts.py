"""Converters for tests: a real shared BraTS case written in the layouts users bring.

Each converter writes only what the layout needs, from a small crop of a shared case, into a temporary
folder: a BraTS-style folder in any image format, one DICOM series per modality, an nnU-Net raw dataset
(``Dataset137_BraTS2021``: nnU-Net's channel order and label numbering) or its ``imagesTs`` folder alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medseg3d.io import Volume, read_volume, write_volume

MODALITIES = ("flair", "t1", "t1ce", "t2")
# nnU-Net's own BraTS 2021 conversion (Dataset137_BraTS2021): the file number of each modality ...
NNUNET_ORDER = ("t1", "t1ce", "t2", "flair")
# ... and its label numbers: BraTS 2 (edema) -> 1, 1 (NCR/NET) -> 2, 4 (enhancing) -> 3
BRATS_TO_NNUNET = {0: 0, 1: 2, 2: 1, 4: 3}
NNUNET_DATASET_JSON = {
    "channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"},
    "labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]},
    "regions_class_order": [1, 2, 3],
    "file_ending": ".nii.gz",
}
# a block through the tumour of Brats18_2013_20_1 with some brain around it (64 x 64 x 48 voxels)
BOX = (slice(96, 160), slice(64, 128), slice(64, 112))


def crop_case(brats_root: Path, case_id: str, box=BOX) -> dict[str, Volume]:
    """The four channels and the label (``"seg"``) of a shared case, cropped to ``box`` (affine moved
    along)."""
    out = {}
    for name in MODALITIES + ("seg",):
        vol = read_volume(brats_root / case_id / f"{case_id}_{name}.nii.gz")
        start = np.array([s.start for s in box] + [1.0])
        affine = vol.affine.copy()
        affine[:, 3] = vol.affine @ start
        out[name] = Volume(np.ascontiguousarray(vol.array[box]), affine)
    return out


def write_case_folder(vols: dict[str, Volume], folder: Path, names: dict[str, str], suffix: str) -> Path:
    """``folder/<names[m]><suffix>`` for each channel (and ``"seg"``) in ``names``."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in names.items():
        write_volume(vols[key], folder / f"{stem}{suffix}")
    return folder


def brats_names(case_id: str, tag: dict[str, str] | None = None, label: bool = True) -> dict[str, str]:
    """``{"flair": "<case>_flair", ...}``; ``tag`` renames a modality's part (``{"t1ce": "t1ce"}``)."""
    tag = tag or {}
    keys = MODALITIES + (("seg",) if label else ())
    return {m: f"{case_id}_{tag.get(m, m)}" for m in keys}


def _sitk_image(vol: Volume):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.transpose(vol.array.astype(np.int16), (2, 1, 0)))
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ vol.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(v) for v in (lps[:3, :3] / spacing[None, :]).ravel()))
    image.SetOrigin(tuple(float(v) for v in lps[:3, 3]))
    return image


STUDY_UID = "1.2.826.0.1.3680043.2.1125.7"


def write_dicom_series(
    vol: Volume,
    folder: Path,
    description: str,
    series_number: int,
    study_uid: str = STUDY_UID,
    tags: dict[str, str] | None = None,
    slices=None,
    start: int = 1,
) -> Path:
    """One DICOM file per slice with the tags a series reader needs (UIDs, position, orientation); its UIDs
    derive from ``study_uid``; ``tags`` (``{"0008|0060": "CT"}``) add or replace header values; ``slices``:
    only these (a series with gaps), files numbered from ``start`` (a second series in the same folder)."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    image = _sitk_image(vol)
    d = image.GetDirection()
    uid = f"{study_uid}.{series_number}"
    common = {
        "0008|0060": "MR",
        "0008|103e": description,
        "0010|0010": "TEST^LAYOUTS",
        "0020|000d": study_uid,
        "0020|000e": uid,
        "0020|0052": f"{study_uid}.0",  # frame of reference: one per study, as a scanner writes
        "0020|0011": str(series_number),
        "0020|0037": "\\".join(f"{v:.6f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
    } | (tags or {})
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for n, k in enumerate(range(image.GetDepth()) if slices is None else slices):
        part = image[:, :, k]
        for tag, value in common.items():
            part.SetMetaData(tag, value)
        part.SetMetaData("0008|0018", f"{uid}.{k + 1}")
        part.SetMetaData("0020|0013", str(k + 1))
        part.SetMetaData(
            "0020|0032", "\\".join(f"{v:.6f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k)))
        )
        writer.SetFileName(str(folder / f"IM{start + n:04d}.dcm"))
        writer.Execute(part)
    return folder


def write_dicom_case(
    vols: dict[str, Volume], folder: Path, series: dict[str, str], study_uid: str = STUDY_UID
) -> Path:
    """A case folder with one DICOM series sub-folder per modality: ``series`` maps modality -> folder name
    (its SeriesDescription is the folder name too, unless given as ``"name|description"``)."""
    for n, (m, spec) in enumerate(series.items(), start=1):
        name, _, description = spec.partition("|")
        write_dicom_series(vols[m], folder / name, description or name, n, study_uid)
    return folder


def to_nnunet_labels(label: np.ndarray) -> np.ndarray:
    out = np.zeros_like(label)
    for brats, nnunet in BRATS_TO_NNUNET.items():
        out[label == brats] = nnunet
    return out


def write_nnunet_case(
    vols: dict[str, Volume], images: Path, case_id: str, labels: Path | None = None, order=NNUNET_ORDER
) -> None:
    """``images/<case>_XXXX.nii.gz`` in ``order`` and, with ``labels``, ``labels/<case>.nii.gz``
    renumbered."""
    images.mkdir(parents=True, exist_ok=True)
    for k, m in enumerate(order):
        write_volume(vols[m], images / f"{case_id}_{k:04d}.nii.gz")
    if labels is not None:
        labels.mkdir(parents=True, exist_ok=True)
        seg = vols["seg"]
        write_volume(seg.with_array(to_nnunet_labels(seg.array)), labels / f"{case_id}.nii.gz")


def write_nnunet_dataset(cases: dict[str, dict[str, Volume]], root: Path, test_cases=()) -> Path:
    """``root`` (e.g. ``Dataset137_BraTS2021``) as nnU-Net's BraTS 2021 conversion writes it."""
    for case_id, vols in cases.items():
        write_nnunet_case(vols, root / "imagesTr", case_id, root / "labelsTr")
    for case_id in test_cases:
        write_nnunet_case(cases[case_id], root / "imagesTs", case_id)
    info = dict(NNUNET_DATASET_JSON, numTraining=len(cases))
    (root / "dataset.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    return root
