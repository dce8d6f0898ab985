"""Follow-up: what changed between two scans of one patient (``medseg3d compare PRIOR CURRENT -o DIR``).

Each time point is a :class:`TimePoint`: the label map and the T1ce in BraTS (SRI24) space, 1 mm, the grid
the model segments on. Raw scans reach it through the raw pipeline (``--align full``, rigid fit to the
template: sizes are kept); cases already preprocessed BraTS-style are on it as they are. Measuring both time
points there gives one axial plane for both (RANO asks for the same plane at each visit; two raw scans'
own slices differ by the head's tilt in the scanner) and volumes straight from the model's output grid.

The two time points are then registered rigidly (SimpleITK, Mattes mutual information, the current T1ce
onto the prior's inside the prior's brain): each went to the template on its own, and the residual of two
independent template fits (a few mm) is enough to make a stable border look like growth on a change map.
Starting from both already in SRI24, the intra-patient fit only has to correct that residual. Volumes and
diameters are measured on each time point's own labels (a rigid map changes neither); new and vanished
lesions, the change map and the pictures use the registered current.

Response categories (RANO 2010 bidimensional, RANO 2.0 volumetric) are computed by :mod:`.rano`; they are
imaging categories only: the full assessment also needs the corticosteroid dose, the clinical status and a
reader's judgement of non-enhancing progression, which software does not have.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import Volume
from .compare_outputs import CHANGE_CODES, change_map, render_html, write_pictures

SCHEMA_VERSION = 1
"""Version of ``compare.json``'s layout (docs/clinical-followup.md); raised when a key changes meaning."""

REGIONS = ("WT", "TC", "ET")
PICTURE_CHANNEL = "t1ce"  # RANO measures on post-contrast T1: the pictures and the registration use it


@dataclass
class TimePoint:
    """One scan's segmentation in BraTS (SRI24) space.

    Args:
        labels: the label map (BraTS values 0/1/2/4) on the BraTS grid.
        image: the T1ce on the same grid (brain only after the raw pipeline), for registration and pictures.
        source: where it came from, for the page (a path, a case name).
        details: how it was made (preprocessing mode, seconds, study date when known).
    """

    labels: Volume
    image: Volume | None
    source: str
    details: dict = field(default_factory=dict)

    @property
    def volumes_ml(self) -> dict:
        """The BraTS region volumes of the labels in ml ({region: ml})."""
        from ..labels import get_scheme
        from ..volumes import volume_summary

        return volume_summary(self.labels.array, self.labels.spacing, get_scheme("brats"))["regions"]


def segment_timepoint(model, volumes: dict, source: str, progress=None) -> TimePoint:
    """Segment one scan into BraTS (SRI24) space.

    Args:
        model: a loaded BraTS model (:func:`medseg3d.models.load_model`).
        volumes: modality -> :class:`Volume` as read (raw scans on any grids, or a preprocessed case).
        source: a name for the page.
        progress: a callable given one line per step, or None.

    Returns:
        The :class:`TimePoint`: labels and T1ce on the BraTS grid.

    Raises:
        InputError: when a channel is missing or unusable, or the model does not segment in BraTS space.
    """
    import time

    from ..predict import segment_volumes
    from ..raw.pipeline import choose_mode, model_space

    space = model_space(model.meta)
    if space is None or tuple(space.get("shape", ())) != (240, 240, 155):
        raise InputError(
            "compare needs a BraTS model (segmenting on the 240 x 240 x 155 SRI24 grid); "
            "use the bundled 'brats' model"
        )
    ordered = {m: volumes[m] for m in model.modalities if m in volumes}
    mode = choose_mode(ordered, space)[0] if len(ordered) == len(model.modalities) else "full"
    # already on the model's grid: as it is; anything else goes through the full pipeline to SRI24 (a
    # 'resample' case keeps its own orientation, not the atlas's, so it would not match the other time point)
    align, out_space = ("none", "native") if mode == "none" else ("full", "atlas")
    t0 = time.perf_counter()
    result = segment_volumes(model, volumes, align=align, space=out_space, progress=progress)
    prepared = result.prepared
    channel = PICTURE_CHANNEL if PICTURE_CHANNEL in prepared.channels else next(iter(prepared.channels))
    image = Volume(np.asarray(prepared.channels[channel], dtype=np.float32), prepared.affine)
    details = {
        "preprocess": prepared.mode,
        "seconds": round(time.perf_counter() - t0, 1),
        "image_channel": channel,
        "warnings": list(prepared.warnings),
    }
    return TimePoint(result.labels, image, source, details)


def save_timepoint(point: TimePoint, folder: str | Path, extra: dict | None = None) -> Path:
    """Write a time point to ``folder`` (``labels.nii.gz``, ``image.nii.gz``, ``timepoint.json`` last, so a
    folder with the JSON is complete).

    Args:
        point: the time point (labels stored as uint8; the image only if it has one).
        folder: where it goes (made if missing).
        extra: more entries for ``timepoint.json`` (None: none).

    Returns:
        The folder.
    """
    from ..io import write_volume
    from ..io.atomic import write_json_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_volume(point.labels.with_array(point.labels.array.astype(np.uint8)), folder / "labels.nii.gz")
    if point.image is not None:
        write_volume(point.image, folder / "image.nii.gz")
    write_json_atomic(
        {
            "source": point.source,
            "details": point.details,
            "volumes_ml": point.volumes_ml,
            "extra": extra or {},
        },
        folder / "timepoint.json",
    )
    return folder


def load_timepoint(folder: str | Path) -> TimePoint:
    """Read a time point written by :func:`save_timepoint`.

    Raises:
        InputError: when the folder lacks ``timepoint.json`` or ``labels.nii.gz``.
    """
    from ..io import read_volume

    folder = Path(folder)
    if not (folder / "timepoint.json").is_file() or not (folder / "labels.nii.gz").is_file():
        raise InputError(f"{folder}: not a saved time point (needs timepoint.json and labels.nii.gz)")
    record = json.loads((folder / "timepoint.json").read_text(encoding="utf-8"))
    image = read_volume(folder / "image.nii.gz") if (folder / "image.nii.gz").is_file() else None
    labels = read_volume(folder / "labels.nii.gz")
    return TimePoint(
        labels.with_array(np.asarray(labels.array).astype(np.uint8)),
        image,
        record["source"],
        record.get("details", {}),
    )


# ------------------------------------------------------------------------------------------------------------
# Reading a time point from what the user gives
# ------------------------------------------------------------------------------------------------------------


def _on_brats_grid(volume: Volume) -> bool:
    from ..raw.template import BRATS_SHAPE

    return tuple(volume.shape) == tuple(BRATS_SHAPE)


def _from_output(path: Path) -> TimePoint:
    """A time point from an earlier ``predict`` output: the label file and, when present, its ``<stem>.json``.

    Labels on the native grid are taken to the BraTS grid through the JSON's transforms (nearest neighbour);
    the T1ce named in its ``inputs`` goes the same way, for the registration and the pictures."""
    from ..io import output_stem, read_volume
    from ..raw.geometry import resample
    from ..raw.template import BRATS_AFFINE, BRATS_SHAPE

    labels = read_volume(path)
    record_path = output_stem(path).with_name(output_stem(path).name + ".json")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else {}
    except ValueError as exc:
        raise InputError(
            f"{record_path}: is not readable JSON ({exc}); write it again with medseg3d predict"
        ) from exc
    grid = record.get("output_grid", {}).get("space")
    inputs = record.get("inputs", {})
    transforms = record.get("transforms", {})
    atlas = transforms.get("atlas", {})
    to_native = None  # BraTS-grid points -> the reference scan's points, from the raw pipeline's maps
    if "matrix_lps" in atlas:
        strip, reference = atlas.get("channel"), record.get("reference", PICTURE_CHANNEL)
        to_strip = np.asarray(atlas["matrix_lps"], dtype=float)
        rigid = np.asarray(transforms[strip]["matrix_lps"], dtype=float) if strip != reference else np.eye(4)
        to_native = np.linalg.inv(rigid) @ to_strip
    if grid == "native":
        if to_native is None:
            raise InputError(f"{record_path}: holds no atlas transform; give the scans to compare instead")
        labels = Volume(
            resample(labels, BRATS_SHAPE, BRATS_AFFINE, to_native, order=0).astype(np.uint8), BRATS_AFFINE
        )
    elif not _on_brats_grid(labels):
        raise InputError(
            f"{path}: a label map on a {labels.shape} grid without its predict JSON beside it; give "
            "the scans instead, or the output of 'medseg3d predict' with its .json"
        )
    image = None
    source = inputs.get(record.get("reference", PICTURE_CHANNEL), inputs.get(PICTURE_CHANNEL))
    if source and Path(source).exists():
        scan = read_volume(source)
        if to_native is not None:
            image = Volume(resample(scan, BRATS_SHAPE, BRATS_AFFINE, to_native, order=1), BRATS_AFFINE)
        elif scan.same_grid(labels):
            image = scan
    details = {"preprocess": record.get("mode", "earlier output"), "from_output": str(path)}
    return TimePoint(labels.with_array(np.asarray(labels.array).astype(np.uint8)), image, str(path), details)


def _is_label_file(path: Path) -> bool:
    from ..io import is_image_file

    return path.is_file() and is_image_file(path)


def timepoint_from(source, model=None, progress=None) -> TimePoint:
    """The :class:`TimePoint` a user means by ``source``.

    Args:
        source: a :class:`TimePoint`; a folder written by :func:`save_timepoint`; a label file written by
            ``medseg3d predict`` (with its ``<stem>.json`` for raw input); or the scans to segment: a case
            folder, a folder of raw files, a DICOM study folder.
        model: the model to segment with (a name, run folder, file or loaded model; default the bundled
            ``brats``), loaded only when scans are to be segmented.
        progress: a callable given one line per step, or None.

    Raises:
        InputError: when the path does not exist or cannot be read as any of these.
    """
    if isinstance(source, TimePoint):
        return source
    path = Path(source)
    if not path.exists():
        raise InputError(
            f"{path}: no such file or folder; give a case folder, a DICOM study or a predict output"
        )
    if path.is_dir() and (path / "timepoint.json").is_file():
        return load_timepoint(path)
    if _is_label_file(path):
        return _from_output(path)
    from ..datasets.resolve import resolve_case_channels
    from ..models import as_loaded

    loaded = as_loaded(model or "brats")
    case, _ = resolve_case_channels([path], loaded.modalities)
    volumes = {name: vol for name, _, vol in case.read_channels()}
    return segment_timepoint(loaded, volumes, str(path), progress)


# ------------------------------------------------------------------------------------------------------------
# Registration, lesions, the record
# ------------------------------------------------------------------------------------------------------------

MATCH_DILATION = 3
"""A lesion is new (or vanished) when no voxel of it lies within this many 18-neighbourhood dilation steps
(3 mm on the 1 mm grid) of the region at the other time point: the lesion-wise scoring's reach."""


def register_timepoints(prior: TimePoint, current: TimePoint) -> tuple[np.ndarray, dict]:
    """Rigid map from the prior's space to the current's (LPS mm, SimpleITK Mattes MI), with its record.

    The metric is taken inside the prior's brain (its T1ce above zero; the whole field of view for an
    unmasked image) without the prior's tumour and 5 mm around it, so that a change of the tumour does not
    pull the fit. Without an image at either time point the identity is used, and said.

    Args:
        prior, current: the two time points on the BraTS grid (their T1ce images are registered).

    Returns:
        (4x4 map from prior LPS points to current LPS points, a JSON-ready record of the method and fit).

    Raises:
        InputError: the registration fails.
    """
    from scipy import ndimage

    from ..raw import register

    if prior.image is None or current.image is None:
        return np.eye(4), {
            "method": "none",
            "reason": "a time point has no T1ce image (an earlier output whose "
            "inputs are gone): both are compared as placed in SRI24",
        }
    inside = np.asarray(prior.image.array) > 0
    if inside.mean() > 0.9:  # not skull-stripped: the whole field of view
        inside = np.ones_like(inside)
    tumour = ndimage.binary_dilation(np.asarray(prior.labels.array) > 0, iterations=5)
    mask = prior.image.with_array((inside & ~tumour).astype(np.float32))
    fit = register.rigid(prior.image, current.image, fixed_mask=mask)
    matrix = fit.matrix
    angle = float(np.degrees(np.arccos(np.clip((np.trace(matrix[:3, :3]) - 1) / 2, -1.0, 1.0))))
    centre = np.array([-119.5, -119.5, 77.0])  # middle of the BraTS grid, LPS mm
    shift = float(np.linalg.norm(matrix[:3, :3] @ centre + matrix[:3, 3] - centre))
    return matrix, {
        "method": "rigid, Mattes mutual information, current T1ce onto prior T1ce (SimpleITK), "
        "prior brain without the tumour",
        "matrix_lps": np.round(matrix, 6).tolist(),
        "rotation_degrees": round(angle, 2),
        "shift_at_centre_mm": round(shift, 2),
        "metric": round(fit.metric, 5),
    }


def _lesion_row(le: dict) -> dict:
    return {
        k: le[k]
        for k in ("id", "volume_ml", "centre_mm", "axial_mm", "perpendicular_mm", "product_mm2", "measurable")
    }


def _unmatched(lesions: np.ndarray, count: int, other: np.ndarray) -> list[int]:
    """Ids of the lesions (1..count) with no voxel within MATCH_DILATION steps of ``other``."""
    from scipy import ndimage

    from ..lesionwise import DILATION_STRUCTURE

    if count == 0:
        return []
    if not other.any():
        return list(range(1, count + 1))
    reach = ndimage.binary_dilation(other, DILATION_STRUCTURE, iterations=MATCH_DILATION)
    touched = set(np.unique(lesions[reach]).tolist())
    return [k for k in range(1, count + 1) if k not in touched]


def _compare(
    prior: TimePoint, current: TimePoint, register: bool = True
) -> tuple[dict, np.ndarray, Volume | None]:
    """The record, the current labels on the prior's grid, and the current image there."""
    import time

    from ..labels import get_scheme
    from ..raw.geometry import resample
    from . import rano
    from .diameters import case_diameters, label_lesions

    scheme = get_scheme("brats")
    t0 = time.perf_counter()
    if register:
        matrix, reg = register_timepoints(prior, current)
    else:
        matrix, reg = np.eye(4), {"method": "none", "reason": "registration turned off"}
    seconds = {"register": round(time.perf_counter() - t0, 1)}
    t0 = time.perf_counter()
    grid = prior.labels
    aligned = resample(current.labels, grid.shape, grid.affine, matrix, order=0).astype(np.uint8)
    aligned_image = None
    if current.image is not None:
        aligned_image = grid.with_array(resample(current.image, grid.shape, grid.affine, matrix, order=1))
    diam = {
        "prior": case_diameters(prior.labels.array, prior.labels.affine, scheme),
        "current": case_diameters(current.labels.array, current.labels.affine, scheme),
    }
    seconds["diameters"] = round(time.perf_counter() - t0, 1)
    vol = {"prior": prior.volumes_ml, "current": current.volumes_ml}
    voxel_mm3 = float(np.prod(grid.spacing))
    regions = {}
    for name in REGIONS:
        members = scheme.regions[name]
        before = np.isin(prior.labels.array, members)
        now = np.isin(aligned, members)
        now_lesions, now_count, _ = label_lesions(now, voxel_mm3)
        before_lesions, before_count, _ = label_lesions(before, voxel_mm3)
        # new lesions are found on the aligned labels; their numbers are those measured on the aligned grid
        aligned_diam = case_diameters(now.astype(np.uint8), grid.affine, scheme, regions={name: (1,)})[name]
        new = [
            _lesion_row(aligned_diam["lesions"][k - 1]) for k in _unmatched(now_lesions, now_count, before)
        ]
        gone = [
            _lesion_row(diam["prior"][name]["lesions"][k - 1])
            for k in _unmatched(before_lesions, before_count, now)
        ]
        v0, v1 = vol["prior"][name], vol["current"][name]
        s0, s1 = diam["prior"][name]["sum_products_mm2"], diam["current"][name]["sum_products_mm2"]
        regions[name] = {
            "volume_ml": {"prior": v0, "current": v1},
            "change_ml": round(v1 - v0, 3),
            "relative_change_percent": rano.percent_change(v0, v1),
            "sum_products_mm2": {"prior": s0, "current": s1},
            "sum_products_change_percent": rano.percent_change(s0, s1),
            "lesions": {"prior": diam["prior"][name]["count"], "current": diam["current"][name]["count"]},
            "new_lesions": new,
            "vanished_lesions": gone,
            "diameters": {"prior": diam["prior"][name], "current": diam["current"][name]},
        }
    et = regions["ET"]
    new_measurable = sum(1 for le in et["new_lesions"] if le["measurable"])
    counts = dict(
        prior_lesions=et["lesions"]["prior"],
        current_lesions=et["lesions"]["current"],
        new_measurable=new_measurable,
    )
    record = {
        "schema": f"medseg3d.compare/{SCHEMA_VERSION}",
        "schema_version": SCHEMA_VERSION,
        "space": "BraTS (SRI24) grid, 240 x 240 x 155 at 1 mm; current registered onto prior",
        "prior": {"source": prior.source, **prior.details, "volumes_ml": vol["prior"]},
        "current": {"source": current.source, **current.details, "volumes_ml": vol["current"]},
        "registration": reg,
        "regions": regions,
        "response": {
            "rano_2010": rano.rano_2010(
                et["sum_products_mm2"]["prior"], et["sum_products_mm2"]["current"], **counts
            ),
            "rano_2_volumetric": rano.rano_2_volumetric(
                et["volume_ml"]["prior"], et["volume_ml"]["current"], **counts
            ),
            "caveat": rano.CAVEAT,
        },
        "seconds": seconds,
    }
    return record, aligned, aligned_image


def compare_timepoints(prior: TimePoint, current: TimePoint, register: bool = True) -> dict:
    """The comparison record of two time points (the content of ``compare.json`` without output paths).

    Args:
        prior, current: the two :class:`TimePoint` objects (BraTS grid).
        register: fit a rigid map of the current onto the prior (default); False compares them as placed.

    Returns:
        The record (schema in docs/clinical-followup.md): per region volumes then and now, absolute and
        relative change, sums of products, lesion counts, new and vanished lesions, diameters; the response
        categories (RANO 2010, RANO 2.0 volumetric) with the caveat; the registration.
    """
    return _compare(prior, current, register)[0]


def compare(prior, current, out_dir, *, model=None, register: bool = True, progress=None) -> dict:
    """Compare two time points and write ``compare.json``, ``compare.html``, ``compare.png``,
    ``change_map.nii.gz`` and the two label maps on the prior's SRI24 grid into ``out_dir``.

    Args:
        prior, current: each what :func:`timepoint_from` takes (scans to segment, an earlier predict
            output, a saved time point or a :class:`TimePoint`).
        out_dir: folder for the outputs (created).
        model: the model to segment scans with (default the bundled ``brats``).
        register: fit a rigid map of the current onto the prior (default).
        progress: a callable given one line per step, or None.

    Returns:
        The record written to ``compare.json``.

    Raises:
        InputError: when an input cannot be read or segmented, or ``out_dir`` is a file.
    """
    import time

    from ..io import write_volume
    from ..io.atomic import write_json_atomic, write_text_atomic

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; give a folder for the comparison's outputs")
    say = progress or (lambda line: None)
    t0 = time.perf_counter()
    say(f"prior: {prior if not isinstance(prior, TimePoint) else prior.source}")
    before = timepoint_from(prior, model, progress)
    say(f"current: {current if not isinstance(current, TimePoint) else current.source}")
    now = timepoint_from(current, model, progress)
    read_seconds = round(time.perf_counter() - t0, 1)
    say("registering the current scan onto the prior (rigid) and measuring")
    record, aligned, aligned_image = _compare(before, now, register)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    grid = before.labels
    write_volume(grid.with_array(change_map(grid.array, aligned)), out / "change_map.nii.gz")
    write_volume(grid.with_array(np.asarray(grid.array).astype(np.uint8)), out / "prior_labels.nii.gz")
    write_volume(grid.with_array(aligned), out / "current_labels_on_prior.nii.gz")
    write_pictures(before, aligned, aligned_image, out / "compare.png")
    record["outputs"] = {
        "page": "compare.html",
        "pictures": "compare.png",
        "change_map": "change_map.nii.gz",
        "change_codes": {str(k): v for k, v in CHANGE_CODES.items()},
        "prior_labels": "prior_labels.nii.gz",
        "current_labels": "current_labels_on_prior.nii.gz",
    }
    record["seconds"] = dict(
        record["seconds"], segment_or_read=read_seconds, write=round(time.perf_counter() - t0, 1)
    )
    write_text_atomic(render_html(record), out / "compare.html")
    write_json_atomic(record, out / "compare.json")  # last: a folder with compare.json is complete
    resp = record["response"]
    say(
        f"RANO 2010: {resp['rano_2010']['category']} ({resp['rano_2010']['reason']}); RANO 2.0 volumetric: "
        f"{resp['rano_2_volumetric']['category']} ({resp['rano_2_volumetric']['reason']})"
    )
    say(f"wrote {out / 'compare.html'} and {out / 'compare.json'}")
    return record
