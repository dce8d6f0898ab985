"""Segmenting new cases with a trained model (``medseg3d predict``) and the in-memory API ``segment``.

A model is named by a bundled name (``brats``), a run folder (its ``model.safetensors``), or a
``.safetensors`` file. Its metadata says which channels it needs, how to preprocess and which label values
to write. Prediction preprocesses exactly as training did, infers on the whole preprocessed volume (or in
sliding windows), optionally mirrors, turns probabilities into labels on the original grid (up-sampling
probabilities when the model works at low resolution) and writes the dataset's own label values with the
input's affine, header and file format.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cascade import refine
from .datasets import Case, check_case_sequences, find_cases, normalise_modalities, resolve_case_channels
from .errors import InputError
from .inference import predict_probabilities
from .io import Volume, image_suffix, output_stem, remove_stale_temporaries_of, write_volume
from .models import LoadedModel, as_loaded, load_model, with_refiner
from .postprocess import check_options, postprocess
from .preprocess import undo_probabilities
from .raw.pipeline import Prepared, model_space, prepare
from .uncertainty import (
    MEMBERS,
    apply_temperature,
    case_confidence,
    check_passes,
    confidence_rank,
    confidence_reference,
    confidence_warning,
    describe_passes,
    describe_source,
    member_uncertainty,
    mirrored_uncertainty,
)


@dataclass
class GridPrediction:
    """What inference gives on the input's grid: probabilities (outputs, X, Y, Z), and with uncertainty the
    voxel-wise normalised entropy (X, Y, Z) of the mirrored passes' mean and the case's confidence."""

    probabilities: np.ndarray
    uncertainty: np.ndarray | None = None
    confidence: dict | None = None
    refinement: dict | None = None
    """With a refiner (:mod:`medseg3d.cascade`): which one and the box it refined on its grid (None: no tumour)."""
    member_probabilities: np.ndarray | None = None
    """With the members' uncertainty of an ensemble: each member's probabilities (M, K, x, y, z) on the model's
    grid, to be pasted back one at a time with ``record`` (:func:`member_volumes`)."""
    record: object = None


def resolve_passes(model: LoadedModel, uncertainty, mirror: bool = False):
    """What ``predict --uncertainty`` without a number measures: an ensemble's members' disagreement (free:
    they run anyway), else 2 mirrored passes (8 with ``mirror``, whose mean is of all 8). Other values pass
    through (None: no uncertainty); they are checked by :func:`~medseg3d.uncertainty.check_passes`."""
    if uncertainty in (0, "auto"):
        return MEMBERS if model.runnable_members > 1 else (8 if mirror else 2)
    return uncertainty


def grid_prediction(model: LoadedModel, image: np.ndarray, affine: np.ndarray, *, mirror: bool = False,
                    sliding_window: bool | None = None, overlap: float | None = None,
                    passes: int | None = None) -> GridPrediction:
    """The model's prediction for raw channels ``image`` (C, X, Y, Z), on their grid.

    Preprocesses as training did (crop, z-score, resampling), infers, and undoes the preprocessing: region
    models give 0 outside the brain, multi-class models background there.

    With ``passes`` (2, 4 or 8 mirrored passes, or ``"members"`` for an ensemble's members, see
    :mod:`medseg3d.uncertainty`) it also measures how much the passes (or the members) disagree. The segmentation is not changed by that: the probabilities are still those of the
    unmirrored pass (with ``mirror``: the mean of all 8, as without uncertainty). The uncertainty map is the
    normalised entropy of the mean of the passes (0 certain, 1 uniform; 0 outside the brain box the model saw),
    and the confidence 1 minus its mean in the tumour zone. Both are measured before calibration: temperature
    scaling softens every boundary alike and hid the passes' disagreement (Spearman with Dice fell from 0.61 /
    0.79 / 0.57 to 0.39 / 0.61 / 0.79 for WT / TC / ET on the 7 cases the bundled model never saw, docs/report.md).
    The model's temperatures, if any, come along in ``confidence["temperatures"]`` for the probabilities
    (:func:`medseg3d.uncertainty.apply_temperature`).

    A model with a refiner (:mod:`medseg3d.cascade`) then has the box around its tumour re-segmented by the
    refiner (mirrored too with ``mirror``); the uncertainty stays the coarse model's.
    """
    x, record, settings = model.model_input(image, affine, sliding_window=sliding_window, overlap=overlap)
    # region probabilities: outside the brain every region is absent (probability 0)
    fill_background = model.kind != "region"
    if not passes:
        probs = predict_probabilities(model.model, x, mirror=mirror, **settings).numpy()
        prediction = GridPrediction(undo_probabilities(probs, record, fill_background=fill_background))
    else:
        check_passes(passes, mirror, model.runnable_members)
        if passes == MEMBERS:  # the ensemble's own probabilities, with each member's beside them
            result = member_uncertainty(model.model, x, mirror=mirror, **settings)
            probs = result.probabilities
        else:
            result = mirrored_uncertainty(model.model, x, passes=passes, keep_first_pass=not mirror, **settings)
            probs = result.probabilities if mirror else result.first_pass
        temps = model.meta.temperatures
        confidence = dict(case_confidence(result, model.kind), calibrated=bool(temps), temperatures=temps)
        # only the entropy map is written: one channel back onto the input grid, not all of maps_on_input_grid's
        entropy = undo_probabilities(result.entropy[None], record, fill_background=False)[0]
        prediction = GridPrediction(undo_probabilities(probs, record, fill_background=fill_background), entropy,
                                    confidence, member_probabilities=result.member_probabilities, record=record)
    if model.refiner is not None:  # the uncertainty stays the coarse model's: it says where the tumour may be
        prediction.probabilities, prediction.refinement = refine(model.refiner, image, affine,
                                                                 prediction.probabilities, mirror=mirror)
    return prediction


def grid_probabilities(model: LoadedModel, image: np.ndarray, affine: np.ndarray, *, mirror: bool = False,
                       sliding_window: bool | None = None, overlap: float | None = None) -> np.ndarray:
    """The model's probabilities (outputs, X, Y, Z) for raw channels ``image`` (C, X, Y, Z), on their grid
    (:func:`grid_prediction` without uncertainty)."""
    return grid_prediction(model, image, affine, mirror=mirror, sliding_window=sliding_window,
                           overlap=overlap).probabilities


def background_fill(model: LoadedModel) -> list[float]:
    """Probability of each output where there is no data: 0 for regions, 1 for a background class."""
    n = model.meta.n_outputs
    return [0.0] * n if model.kind == "region" else [1.0] + [0.0] * (n - 1)


def probabilities_to_labels(model: LoadedModel, probs: np.ndarray, *, min_component: int = 0,
                            min_enhancing: int = 0, spacing=None, max_distance: float = 0.0) -> np.ndarray:
    """Label values from probabilities (regions above 0.5, or the most probable class), then post-processing
    (:func:`medseg3d.postprocess.postprocess`; ``max_distance`` in mm needs the grid's ``spacing``)."""
    if model.kind == "region":
        labels = model.scheme.regions_to_values(probs > 0.5)
    else:
        labels = model.scheme.to_values(probs.argmax(0))
    return postprocess(labels, model.scheme, spacing=spacing, min_component=min_component,
                       min_enhancing=min_enhancing, max_distance_mm=max_distance)


def segment_arrays(
    model: LoadedModel,
    image: np.ndarray,
    affine: np.ndarray,
    *,
    mirror: bool = False,
    sliding_window: bool | None = None,
    overlap: float | None = None,
    min_component: int = 0,
    min_enhancing: int = 0,
    max_distance: float | None = None,
    return_probabilities: bool = False,
):
    """Label values (X, Y, Z) for raw channels ``image`` (C, X, Y, Z) on the grid of ``affine``.

    ``sliding_window`` / ``overlap`` left as ``None`` take the model's own defaults
    (:meth:`LoadedModel.inference_settings`), ``max_distance`` too (:meth:`LoadedModel.max_distance`; 0: off).
    """
    max_distance = model.max_distance(max_distance)
    check_options(model.scheme, min_component, min_enhancing, max_distance)
    full = grid_probabilities(model, image, affine, mirror=mirror, sliding_window=sliding_window, overlap=overlap)
    labels = probabilities_to_labels(model, full, min_component=min_component, min_enhancing=min_enhancing,
                                     spacing=np.linalg.norm(np.asarray(affine)[:3, :3], axis=0),
                                     max_distance=max_distance)
    return (labels, full) if return_probabilities else labels


@dataclass
class CaseResult:
    """One segmented case: labels on the output grid, probabilities there, and how the input was prepared."""

    labels: Volume
    probabilities: np.ndarray
    prepared: Prepared
    seconds: dict
    uncertainty: np.ndarray | None = None
    """Normalised entropy of the mirrored passes (X, Y, Z) on the labels' grid, with ``uncertainty`` passes."""
    confidence: dict | None = None
    """The case's confidence (:func:`medseg3d.uncertainty.case_confidence`) and calibration temperatures."""
    refinement: dict | None = None
    """With a refiner: which one and the box it refined (:func:`medseg3d.cascade.refine`)."""
    far_removed_ml: float = 0.0
    """Tumour (ml) that ``max_distance`` removed as components far from the largest one."""


def segment_volumes(model: LoadedModel, volumes: dict[str, Volume], *, preprocess: str = "auto",
                    space: str = "native", progress=None, mirror: bool = False, sliding_window: bool | None = None,
                    overlap: float | None = None, min_component: int = 0, min_enhancing: int = 0,
                    max_distance: float | None = None, uncertainty: int | None = None,
                    template_fit: str | None = None) -> CaseResult:
    """Segment one case given as channel volumes on any grids (see :mod:`medseg3d.raw`).

    Args:
        volumes: modality -> Volume, the model's modalities.
        preprocess: ``auto`` (decide from the input), ``full``, ``resample`` or ``none``.
        space: ``native`` writes labels on the reference scan's grid (T1ce for BraTS models; with
            ``preprocess none`` the first channel's, as always); ``atlas`` on the model's grid (after ``full``:
            the 240 x 240 x 155 BraTS grid).
        progress: a callable given one line per step (e.g. ``print``), or None.
        template_fit: ``rigid`` or ``affine``: how ``full`` maps the brain to the template (default rigid,
            :data:`medseg3d.raw.pipeline.TEMPLATE_FIT`).
        uncertainty: 2, 4 or 8 mirrored passes to measure the uncertainty with, ``"members"`` for an
            ensemble's members (each member's tumour volumes go into ``confidence["member_volumes_ml"]``), or
            ``"auto"`` (:func:`resolve_passes`); see :func:`grid_prediction`. The labels are the same as without.
    """
    import time

    if space not in ("native", "atlas"):
        raise InputError(f"--space must be 'native' or 'atlas', got {space!r}")
    max_distance = model.max_distance(max_distance)  # None: the model's own (0: off)
    check_options(model.scheme, min_component, min_enhancing, max_distance)
    uncertainty = resolve_passes(model, uncertainty, mirror)
    check_passes(uncertainty, mirror, model.runnable_members)  # before the minutes a raw case's preprocessing may take
    missing = [m for m in model.modalities if m not in volumes]
    if missing:
        raise InputError(f"modality {', '.join(missing)} is missing; the model needs {', '.join(model.modalities)}")
    ordered = {m: volumes[m] for m in model.modalities}
    prepared = prepare(ordered, model_space(model.meta), preprocess, progress=progress, template_fit=template_fit)
    if space == "atlas" and prepared.mode != "full":
        raise InputError("--space atlas needs the full preprocessing (--preprocess full); this input is "
                         f"'{prepared.mode}', already on its own grid")
    if progress and prepared.mode != "none":
        progress(f"segmenting on the model's grid {'x'.join(str(s) for s in prepared.shape)}")
    t0 = time.perf_counter()
    prediction = grid_prediction(model, prepared.image(model.modalities), prepared.affine, mirror=mirror,
                                 sliding_window=sliding_window, overlap=overlap, passes=uncertainty)
    probs, entropy = prediction.probabilities, prediction.uncertainty
    seconds = {"segment": round(time.perf_counter() - t0, 2)}
    if space == "atlas":
        grid = Volume(np.zeros(prepared.shape, np.uint8), prepared.affine)
    else:
        t0 = time.perf_counter()
        probs = prepared.to_native(probs, background_fill(model))
        if entropy is not None:  # outside the model's grid nothing was seen: certain, as outside the brain box
            entropy = prepared.to_native(entropy[None], [0.0])[0]
        seconds["map back"] = round(time.perf_counter() - t0, 2)
        grid = prepared.native
    post = dict(min_component=min_component, min_enhancing=min_enhancing, spacing=grid.spacing,
                max_distance=max_distance)
    labels = probabilities_to_labels(model, probs, **post)
    far_removed_ml = 0.0
    if max_distance > 0:  # say what it removed: a second lesion of a multifocal tumour would go too
        kept = probabilities_to_labels(model, probs, **dict(post, max_distance=0.0))
        far_removed_ml = float(np.count_nonzero((kept > 0) & (labels == 0)) * np.prod(grid.spacing) / 1000.0)
    confidence = prediction.confidence
    if prediction.member_probabilities is not None and prediction.refinement is None:
        t0 = time.perf_counter()
        to_grid = (lambda p: p) if space == "atlas" else (lambda p: prepared.to_native(p, background_fill(model)))
        confidence = dict(confidence, member_volumes_ml=member_volumes(model, prediction, to_grid, post))
        seconds["members' volumes"] = round(time.perf_counter() - t0, 2)
    return CaseResult(grid.with_array(labels), probs, prepared, seconds, entropy, confidence,
                      prediction.refinement, round(far_removed_ml, 2))


def member_volumes(model: LoadedModel, prediction: GridPrediction, to_grid, post: dict) -> dict[str, list[float]]:
    """Each ensemble member's tumour volumes in ml, region -> [one per member], measured as the ensemble's
    are: its probabilities pasted back (``to_grid`` takes them from the preprocessed grid to the output's),
    turned into labels with the same post-processing ``post``, one member at a time (a member on a full
    240 x 240 x 155 grid is about 100 MB)."""
    from .report import volume_summary

    fill_background = model.kind != "region"
    out: dict[str, list[float]] = {}
    for member in prediction.member_probabilities:
        probs = to_grid(undo_probabilities(member, prediction.record, fill_background=fill_background))
        labels = probabilities_to_labels(model, probs, **post)
        for region, ml in volume_summary(labels, post["spacing"], model.scheme)["regions"].items():
            out.setdefault(region, []).append(ml)
    return out


def _volumes_from_channels(loaded: LoadedModel, channels) -> dict[str, Volume]:
    """modality -> Volume from a case folder, a list of files or Volumes (model's order), or a dict."""
    if isinstance(channels, dict):
        names = normalise_modalities(list(channels))
        missing = [m for m in loaded.modalities if m not in names]
        if missing:
            raise InputError(f"modality {', '.join(missing)} is missing; the model needs {', '.join(loaded.modalities)}")
        lookup = dict(zip(names, channels.values()))
        channels = [lookup[m] for m in loaded.modalities]
    if isinstance(channels, (str, os.PathLike, Volume)):
        channels = [channels]
    channels = list(channels)
    if all(isinstance(c, Volume) for c in channels):
        if len(channels) != len(loaded.modalities):
            raise InputError(f"the model needs {len(loaded.modalities)} channels ({', '.join(loaded.modalities)}), "
                             f"got {len(channels)}")
        return dict(zip(loaded.modalities, channels))
    if any(isinstance(c, Volume) for c in channels):
        raise InputError("give the channels either all as files or all as Volumes")
    case, _ = resolve_case_channels([Path(p) for p in channels], loaded.modalities)
    return {name: vol for name, _, vol in case.read_channels()}


def segment(model, channels, *, preprocess: str = "auto", space: str = "native", mirror: bool = False,
            sliding_window: bool | None = None, overlap: float | None = None, min_component: int = 0,
            min_enhancing: int = 0, max_distance: float | None = None, template_fit: str | None = None) -> Volume:
    """Segment one case in memory and return the label map as a :class:`Volume`.

    Args:
        model: a bundled name, run folder, model file or :class:`LoadedModel`.
        channels: a case folder, a list of channel files or :class:`Volume` objects (model's channel order),
            or a dict modality -> file/Volume. Raw scans (skull on, each on its own grid) are accepted.
        preprocess: ``auto``, ``full``, ``resample`` or ``none`` (see :mod:`medseg3d.raw.pipeline`).
        space: ``native`` (the T1ce's grid for raw input) or ``atlas`` (the BraTS grid, after ``full``).
        template_fit: ``rigid`` (default) or ``affine`` map to the template in ``full``.

    Example:
        >>> labels = medseg3d.segment("brats", "../shared/data/brats2018/Brats18_2013_2_1")
        >>> labels.array.max()
        4
        >>> raw = "../shared/data/raw_clinical/TCGA-FG-6692/raw/"
        >>> labels = medseg3d.segment("brats", [raw + f"{m}.nii.gz" for m in ("flair", "t1", "t1ce", "t2")])
    """
    loaded = as_loaded(model)
    volumes = _volumes_from_channels(loaded, channels)
    return segment_volumes(loaded, volumes, preprocess=preprocess, space=space, mirror=mirror,
                           sliding_window=sliding_window, overlap=overlap, min_component=min_component,
                           min_enhancing=min_enhancing, max_distance=max_distance, template_fit=template_fit).labels


def _output_path_for(case: Case, out_dir: Path) -> Path:
    first = Path(next(iter(case.channels.values())))
    suffix = image_suffix(first) or ".nii.gz"
    return out_dir / f"{case.case_id}{suffix}"


def predict(
    model,
    inputs: list,
    output: str | os.PathLike,
    *,
    mirror: bool = False,
    sliding_window: bool | None = None,
    overlap: float | None = None,
    min_component: int = 0,
    min_enhancing: int = 0,
    max_distance: float | None = None,
    save_probabilities: bool = False,
    force: bool = False,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
    device: str = "auto",
    precision: str = "auto",
    preprocess: str = "auto",
    space: str = "native",
    channel_files: dict | None = None,
    report: bool = False,
    uncertainty: int | None = None,
    output_format: str | None = None,
    refine: str | None = "auto",
    template_fit: str | None = None,
) -> list[Path]:
    """Segment one case (``output`` is a file) or every case of a dataset (``output`` is a folder).

    ``preprocess``, ``space`` and ``template_fit`` are those of :func:`segment_volumes`: scans as exported (skull on, each on its
    own grid) are co-registered, skull-stripped and aligned to the model's grid first, and such a case also
    gets ``<output stem>.json`` (volumes, steps, timings, quality checks) and ``<output stem>.png``.
    ``report=True`` writes ``<output stem>.report.html`` (one offline page: volumes, lesions, pictures, model
    card, preprocessing, warnings) and its ``<output stem>.json`` for every case.
    ``channel_files`` (modality -> file) says which file is which where names do not tell.
    ``uncertainty`` (2, 4 or 8 mirrored passes; ``"members"``: an ensemble's members; ``"auto"``: members for
    an ensemble, else 2 passes, 8 with ``mirror``) writes ``<output stem>_uncertainty.<suffix>`` (normalised
    entropy, 0 to 1) and the case's confidence into ``<output stem>.json`` (for an ensemble's members also each
    member's tumour volumes); with it, ``save_probabilities`` writes
    the probabilities after the model's calibration, if it has one. The labels are the same as without.
    ``output_format``: ``dicom-seg`` also writes ``<output stem>.seg.dcm``, a DICOM Segmentation object that
    references the input DICOM series the labels lie on (written by default when there is one; ``nifti``: not).
    ``refine``: ``auto`` runs the refiner ``model`` has or names, if any (:mod:`medseg3d.cascade`); ``none``
    none; else the refiner to run (a bundled name, run folder or file).

    In dataset mode each case goes to ``output/<case>.<input suffix>``; with ``shard=(i, n)`` (or under
    ``torchrun``, from ``RANK``/``WORLD_SIZE``) this process takes every n-th case starting at i; cases whose
    output exists are skipped (so an interrupted or parallel run continues). Returns the written paths.
    """
    from tqdm import tqdm

    if isinstance(model, LoadedModel):
        loaded = with_refiner(model, refine)
    else:
        loaded = load_model(model, device, precision, refine)
    output = Path(output)
    uncertainty = resolve_passes(loaded, uncertainty, mirror)
    inputs = [Path(p) for p in inputs]
    for p in inputs:
        if not p.exists():
            raise InputError(f"{p}: no such file or folder; check the input path")
    # one scan of a folder says whether it is a dataset (several cases) and gives its cases
    found = _cases_in(inputs[0]) if len(inputs) == 1 and inputs[0].is_dir() and not channel_files else []
    dataset_mode = len(found) > 1
    options = dict(mirror=mirror, sliding_window=sliding_window, overlap=overlap, min_component=min_component,
                   min_enhancing=min_enhancing, max_distance=max_distance, preprocess=preprocess, space=space,
                   uncertainty=uncertainty, template_fit=template_fit)  # the same for every case
    _check_output_options(uncertainty, output_format, space, mirror, loaded.runnable_members)
    extras = {"report": report, "output_format": output_format}
    if not dataset_mode:
        if image_suffix(output) == "":
            raise InputError(f"{output}: name the output file with an image suffix (.nii.gz, .mha...)")
        if output.exists() and not force:
            raise InputError(f"{output}: exists already; add --force to overwrite it")
        case, lines = resolve_case_channels(inputs, loaded.modalities, channel_files)
        _check_dicom_source(case, output_format)
        _make_parent(output)
        say = (lambda line: print(line, flush=True)) if progress else None
        for line in lines if say else []:
            say(line)
        return [_predict_case(loaded, case, output, save_probabilities, dict(options, progress=say), extras)]
    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: is a file; for a dataset give an output folder")
    cases = [c.select(loaded.modalities) for c in found]
    for case in cases:
        _check_dicom_source(case, output_format)
    if shard is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        shard = (int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"]))
    if shard is not None:
        i, n = shard
        if not 0 <= i < n:
            raise InputError(f"--shard {i}/{n}: the index must be between 0 and {n - 1}")
        cases = cases[i::n]
    output.mkdir(parents=True, exist_ok=True)
    if not os.access(output, os.W_OK):
        raise InputError(f"{output}: output folder is not writable; choose another -o")
    written = []
    for case in tqdm(cases, desc="predict", unit="case", disable=not progress):
        target = _output_path_for(case, output)
        remove_stale_temporaries_of(target, _companions(target))  # left by a killed run of this shard (docs/distributed.md)
        if target.exists() and not force:
            continue
        written.append(_predict_case(loaded, case, target, save_probabilities,
                                     dict(options, progress=tqdm.write if progress else None), extras))
    return written


def _check_output_options(uncertainty: int | str | None, output_format: str | None, space: str, mirror: bool,
                          members: int = 1) -> None:
    """Refuse option combinations before minutes of work (one line each)."""
    check_passes(uncertainty, mirror, members)
    if output_format not in (None, "nifti", "dicom-seg"):
        raise InputError(f"--output-format must be nifti or dicom-seg, got {output_format!r}")
    if output_format == "dicom-seg" and space == "atlas":
        raise InputError("--output-format dicom-seg needs the labels on the input series' grid; leave out --space atlas")


def _dicom_channels(case: Case) -> list[str]:
    from .io import is_dicom_folder

    return [m for m, p in case.channels.items() if Path(p).is_dir() and is_dicom_folder(p)]


def _check_dicom_source(case: Case, output_format: str | None) -> None:
    if output_format == "dicom-seg" and not _dicom_channels(case):
        raise InputError(f"{case.case_id}: --output-format dicom-seg needs DICOM series as input (a DICOM SEG "
                         "references the images it was drawn on); these channels are image files")


def _write_dicom_seg(loaded: LoadedModel, case: Case, dicom: list[str], result: CaseResult, volumes: dict,
                     stem: Path) -> Path | None:
    """``<stem>.seg.dcm`` referencing the DICOM series (among the ``dicom`` channels) the labels lie on (the
    T1ce for raw input), if any."""
    from .dicom.seg import write_dicom_seg

    order = sorted(dicom, key=lambda m: m != result.prepared.reference)
    source = next((m for m in order if volumes[m].same_grid(result.labels)), None)
    if source is None:
        return None
    return write_dicom_seg(result.labels, case.channels[source], stem.with_name(stem.name + ".seg.dcm"),
                           loaded.scheme, model_name=f"medseg3d {loaded.pipeline_name}")


def _companions(target: Path) -> list[str]:
    """The names of the files predict may write beside ``target`` (probabilities, uncertainty, JSON, report...)."""
    suffix, stem = image_suffix(target), output_stem(target).name
    return [f"{stem}_probabilities{suffix}", f"{stem}_uncertainty{suffix}", f"{stem}.json", f"{stem}.png",
            f"{stem}.report.html", f"{stem}.seg.dcm"]


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path.parent}: cannot create the output folder ({exc.strerror}); choose another -o") from exc


def _cases_in(folder: Path) -> list[Case]:
    """The cases ``find_cases`` sees in ``folder``; none where it sees no dataset (e.g. a folder of files whose
    names :func:`resolve_case_channels` must identify)."""
    try:
        return find_cases(folder)
    except InputError:
        return []


def _warn(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


def _predict_case(loaded: LoadedModel, case: Case, target: Path, save_probabilities: bool, options: dict,
                  extras: dict | None = None) -> Path:
    import time

    t0 = time.perf_counter()
    volumes = {name: vol for name, _, vol in case.read_channels()}
    read_seconds = time.perf_counter() - t0
    say = options.get("progress")
    # which file is which sequence, by content against the names (issue 36): reorders, refuses or flags
    volumes, sequences = check_case_sequences(case, volumes, (extras or {}).get("trust_names", False))
    for line in sequences.lines:
        (say or _warn)(f"note: {line}")
    for line in sequences.review:
        _warn(f"warning: {line}")
    result = segment_volumes(loaded, volumes, **options)
    if say and result.prepared.mode != "none":
        say(f"{case.case_id}: preprocessing '{result.prepared.mode}': {result.prepared.reason}")
    post = {"min_component": options.get("min_component", 0), "min_enhancing": options.get("min_enhancing", 0),
            "max_distance_mm": loaded.max_distance(options.get("max_distance")),
            "far_removed_ml": result.far_removed_ml}  # what the case's JSON records
    if say and result.far_removed_ml > 0:
        say(f"{case.case_id}: removed {result.far_removed_ml:.3g} ml of tumour farther than "
            f"{post['max_distance_mm']:g} mm from the largest component (--max-distance 0 keeps it)")
    grid = result.labels
    suffix, stem = image_suffix(target), output_stem(target)
    if save_probabilities:
        probs = result.probabilities
        if result.confidence and result.confidence.get("temperatures"):
            probs = apply_temperature(probs, result.confidence["temperatures"], loaded.kind)
        write_volume(Volume(np.moveaxis(probs, 0, -1).astype(np.float32), grid.affine),
                     stem.with_name(stem.name + "_probabilities" + suffix))
    if result.uncertainty is not None:
        # 3 decimals are more than the map means and shrink the file about fourfold
        write_volume(grid.with_array(np.round(result.uncertainty, 3).astype(np.float32)),
                     stem.with_name(stem.name + "_uncertainty" + suffix))
    t0 = time.perf_counter()
    written = write_volume(result.labels, target)
    extras = extras or {}
    tumour_ml = None  # other modes measure and say it in their summary (raw.summary)
    if result.prepared.mode == "none":
        from .report import volume_summary, volumes_line

        tumour_ml = volume_summary(result.labels.array, result.labels.spacing, loaded.scheme)
        if say:
            say(f"{case.case_id}: tumour volumes: {volumes_line(tumour_ml['regions'])}")
    uncertainty = _uncertainty_record(loaded, result, stem, suffix)
    if uncertainty:
        rank = uncertainty.get("held_out_share_less_confident")
        if say:
            say(f"{case.case_id}: confidence {uncertainty['confidence']:.3f} over "
                f"{describe_passes(uncertainty['passes'], uncertainty.get('source', 'mirrored'))}"
                + (f", above {rank:.0%} of the held-out cases" if rank is not None else ""))
            spread = member_spread(uncertainty)
            if spread:
                say(f"{case.case_id}: {spread}")
        low = confidence_warning(uncertainty["confidence"], uncertainty.get("low_confidence_below"),
                                 uncertainty.get("source", "mirrored"))
        if low:
            _warn(f"warning: {case.case_id}: {low}")
    raw_summary = None
    if result.prepared.mode != "none":
        from .raw.summary import write_case_summary

        seconds = dict(read=round(read_seconds, 2), **result.seconds, write=round(time.perf_counter() - t0, 2))
        lines, raw_summary = write_case_summary(result.labels, result.prepared, loaded.scheme, target, seconds,
                                                model=loaded.pipeline_name,
                                                inputs={m: str(p) for m, p in case.channels.items()},
                                                extra={"postprocessing": post} | ({"uncertainty": uncertainty} if uncertainty else {}))
        for line in lines if say else []:
            say(line)
    dicom = _dicom_channels(case) if extras.get("output_format") != "nifti" else []
    if dicom:
        asked = extras.get("output_format") == "dicom-seg"
        try:
            seg_path = _write_dicom_seg(loaded, case, dicom, result, volumes, stem)
        except InputError as exc:
            if asked:
                raise
            seg_path = None  # written by default beside the NIfTI: a series that cannot take one is not fatal
            _warn(f"warning: {case.case_id}: no DICOM SEG written: {exc}")
        if seg_path is None and asked:
            raise InputError(f"{case.case_id}: the labels do not lie on an input DICOM series' grid (they were written "
                             f"to {target}); use --space native")
        if seg_path is not None and say:
            say(f"wrote {seg_path}")
    if extras.get("report"):
        _write_report(loaded, result, volumes, stem, raw_summary, say, uncertainty, post)
    elif uncertainty and raw_summary is None:
        from .io import write_json_atomic

        write_json_atomic({"model": loaded.pipeline_name, "output": str(target), "volumes_ml": tumour_ml,
                           "postprocessing": post, "uncertainty": uncertainty}, stem.with_name(stem.name + ".json"))
    return written


def _uncertainty_record(loaded: LoadedModel, result: CaseResult, stem: Path, suffix: str) -> dict | None:
    """What the case's JSON says about its uncertainty: confidence, passes, how it compares with the held-out
    cases of the model's calibration, and the map's file."""
    if result.confidence is None:
        return None
    source = result.confidence.get("source", "mirrored")
    record = dict(result.confidence, map=str(stem.with_name(stem.name + "_uncertainty" + suffix)),
                  map_meaning=f"normalised entropy of the mean of {describe_source(source)}: 0 certain, 1 uniform")
    reference = confidence_reference(loaded.meta.calibration, result.confidence["passes"], source)
    if reference is None:
        record["low_confidence_below"] = None
        record["reference"] = (f"none for {describe_passes(result.confidence['passes'], source)}: run `medseg3d "
                               "calibrate` with --passes the same as --uncertainty to compare cases with held-out ones")
    else:
        record["low_confidence_below"] = reference["low_below"]
        record["held_out_share_less_confident"] = confidence_rank(result.confidence["confidence"], reference)
        record["reference"] = f"{len(reference['held_out'])} held-out cases of the model's calibration"
    return record


def member_spread(uncertainty: dict | None) -> str | None:
    """``"the 5 members' volumes: WT 31.2-35.0 ml, TC 10.1-12.3 ml, ET 4.0-4.9 ml"``, or None without them."""
    volumes = (uncertainty or {}).get("member_volumes_ml")
    if not volumes:
        return None
    n = len(next(iter(volumes.values())))
    return f"the {n} members' volumes: " + ", ".join(f"{r} {min(v):.1f}-{max(v):.1f} ml" for r, v in volumes.items())


def _write_report(loaded: LoadedModel, result: CaseResult, volumes: dict, stem: Path, raw_summary, say,
                  uncertainty: dict | None = None, post: dict | None = None) -> None:
    """``<stem>.report.html`` and ``<stem>.json`` (a raw case's summary kept inside it)."""
    from .report import write_case_report

    on_grid = {m: v for m, v in volumes.items() if v.same_grid(result.labels)}
    if not on_grid:  # labels on the atlas grid: show the preprocessed channels there
        on_grid = {m: Volume(a, result.prepared.affine) for m, a in result.prepared.channels.items()}
    steps = [{"step": "preprocess", "mode": result.prepared.mode, "reason": result.prepared.reason}]
    steps += list(result.prepared.steps)
    extra = {"warnings": list((raw_summary or {}).get("warnings", result.prepared.warnings))}
    if raw_summary:
        extra["raw_input"] = raw_summary
    if post:
        extra["postprocessing"] = post
        if post["far_removed_ml"] > 0:
            extra["warnings"].append(f"{post['far_removed_ml']:.3g} ml of tumour farther than {post['max_distance_mm']:g} "
                                     "mm from the largest component was removed; if it may be a second lesion, "
                                     "segment again with --max-distance 0")
    if uncertainty:
        extra["uncertainty"] = uncertainty
    if result.refinement:
        extra["refinement"] = result.refinement
    json_path, html_path = write_case_report(result.labels, on_grid, loaded.scheme, stem, loaded.card or loaded.meta.to_dict(),
                                             steps, extra, uncertainty_map=result.uncertainty)
    if say:
        say(f"wrote {html_path} and {json_path}")
