"""One case through the model, as its stages: align -> preprocess -> infer -> undo -> native grid -> labels ->
post-process.

:func:`segment_volumes` is the spine every entry point ends in (``medseg3d predict``, :func:`segment`, the
experiment runner and calibration use its stages). It takes resolved :class:`~.options.PredictOptions`
and writes nothing: files are :mod:`.outputs`' job.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cascade import refine
from ..datasets import normalise_modalities, resolve_case_channels
from ..errors import InputError
from ..inference import model_input, predict_probabilities
from ..io import Volume
from ..models import LoadedModel, as_loaded
from ..postprocess import postprocess_counted
from ..preprocess import undo_probabilities
from ..raw.pipeline import Aligned, align, model_space
from ..uncertainty import MEMBERS, case_confidence, member_uncertainty, mirrored_uncertainty
from .options import Passes, PredictOptions


@dataclass
class GridPrediction:
    """What inference gives on the input's grid: probabilities (outputs, X, Y, Z), and with uncertainty the
    voxel-wise normalised entropy (X, Y, Z) of the mirrored passes' mean and the case's confidence."""

    probabilities: np.ndarray
    uncertainty: np.ndarray | None = None
    confidence: dict | None = None
    refinement: dict | None = None
    """With a refiner (:mod:`medseg3d.cascade`): which one and the box it refined on its grid (None: no
    tumour)."""
    member_probabilities: np.ndarray | None = None
    """With the members' uncertainty of an ensemble: each member's probabilities (M, K, x, y, z) on the
    model's grid, to be pasted back one at a time with ``record`` (:func:`member_volumes`)."""
    record: object = None


@dataclass
class CaseResult:
    """One segmented case: labels on the output grid, probabilities there, and how the input was aligned."""

    labels: Volume
    probabilities: np.ndarray
    prepared: Aligned
    seconds: dict
    uncertainty: np.ndarray | None = None
    """Normalised entropy of the mirrored passes (X, Y, Z) on the labels' grid, with ``uncertainty``
    passes."""
    confidence: dict | None = None
    """The case's confidence (:func:`medseg3d.uncertainty.case_confidence`) and calibration temperatures."""
    refinement: dict | None = None
    """With a refiner: which one and the box it refined (:func:`medseg3d.cascade.refine`)."""
    far_removed_ml: float = 0.0
    """Tumour (ml) that ``max_distance`` removed as components far from the largest one."""
    small_removed_ml: float = 0.0
    """Tumour (ml) that the lesion-size rule (``min_lesion``'s WT) removed as small components."""

    @property
    def aligned(self) -> Aligned:
        """How the input reached the model's grid (the same object as ``prepared``, its older name)."""
        return self.prepared


def resolve_passes(model: LoadedModel, uncertainty: Passes, mirror: bool = False) -> Passes:
    """What ``predict --uncertainty`` without a number measures: an ensemble's members' disagreement (free:
    they run anyway), else 2 mirrored passes (8 with ``mirror``). :meth:`PredictOptions.resolve` does this
    for a prediction and checks the result.

    Args:
        model: the model (how many members it runs).
        uncertainty: "auto", "members", a number of passes, or None (no uncertainty); other values pass
            through.
        mirror: whether the prediction mirrors (test-time augmentation).
    """
    return PredictOptions(mirror=mirror, uncertainty=uncertainty).resolve(model).uncertainty


def background_fill(model: LoadedModel) -> list[float]:
    """Probability of each output where there is no data: 0 for regions, 1 for a background class."""
    n = model.meta.n_outputs
    return [0.0] * n if model.kind == "region" else [1.0] + [0.0] * (n - 1)


def grid_prediction(
    model: LoadedModel,
    image: np.ndarray,
    affine: np.ndarray,
    *,
    mirror: bool = False,
    sliding_window: bool | None = None,
    overlap: float | None = None,
    passes: int | str | None = None,
) -> GridPrediction:
    """The model's prediction for raw channels ``image`` (C, X, Y, Z), on their grid: preprocess -> infer ->
    undo.

    Preprocesses as training did (crop, z-score, resampling), infers, and undoes the preprocessing: region
    models give 0 outside the brain, multi-class models background there.

    Args:
        model: the loaded model.
        image, affine: the channels in the model's order and their grid.
        mirror: average the 8 mirrored passes.
        sliding_window, overlap: None takes the model file's own.
        passes: 2, 4 or 8 mirrored passes, or ``"members"`` for an ensemble's members (checked by the caller:
            :meth:`PredictOptions.resolve`, :func:`medseg3d.uncertainty.check_passes`): also measures how much
            the passes (or members) disagree, without changing the segmentation (the unmirrored pass's
            probabilities; with ``mirror`` the mean of all 8). The map is the normalised entropy of the
            passes' mean (0 certain, 1 uniform; 0 outside the box the model saw), the confidence 1 minus its
            mean in the tumour zone, both before calibration (docs/report.md says why); the model's
            temperatures come along in ``confidence["temperatures"]``.

    Returns:
        A :class:`GridPrediction`. A model with a refiner (:mod:`medseg3d.cascade`) has the box around its
        tumour re-segmented by the refiner; the uncertainty stays the coarse model's.
    """
    x, record, settings = model_input(model, image, affine, sliding_window=sliding_window, overlap=overlap)
    # region probabilities: outside the brain every region is absent (probability 0)
    fill_background = model.kind != "region"
    if not passes:
        probs = predict_probabilities(model.model, x, mirror=mirror, **settings).numpy()
        prediction = GridPrediction(undo_probabilities(probs, record, fill_background=fill_background))
    else:
        if passes == MEMBERS:  # the ensemble's own probabilities, with each member's beside them
            result = member_uncertainty(model.model, x, mirror=mirror, **settings)
            probs = result.probabilities
        else:
            result = mirrored_uncertainty(
                model.model, x, passes=passes, keep_first_pass=not mirror, **settings
            )
            probs = result.probabilities if mirror else result.first_pass
        temps = model.meta.temperatures
        confidence = dict(case_confidence(result, model.kind), calibrated=bool(temps), temperatures=temps)
        # only the entropy map is written: one channel back onto the input grid
        entropy = undo_probabilities(result.entropy[None], record, fill_background=False)[0]
        prediction = GridPrediction(
            undo_probabilities(probs, record, fill_background=fill_background),
            entropy,
            confidence,
            member_probabilities=result.member_probabilities,
            record=record,
        )
    if model.refiner is not None:  # the uncertainty stays the coarse model's: it says where the tumour may be
        prediction.probabilities, prediction.refinement = refine(
            model.refiner, image, affine, prediction.probabilities, mirror=mirror
        )
    return prediction


def grid_probabilities(
    model: LoadedModel,
    image: np.ndarray,
    affine: np.ndarray,
    *,
    mirror: bool = False,
    sliding_window: bool | None = None,
    overlap: float | None = None,
) -> np.ndarray:
    """The model's probabilities (outputs, X, Y, Z) for raw channels ``image`` (C, X, Y, Z), on their grid
    (:func:`grid_prediction` without uncertainty).

    Args:
        model: the model.
        image: the channels in the model's order, (C, X, Y, Z).
        affine: their 4x4 voxel-to-RAS map.
        mirror: average over mirrored passes.
        sliding_window, overlap: the inference window (None: the model's defaults).
    """
    return grid_prediction(
        model, image, affine, mirror=mirror, sliding_window=sliding_window, overlap=overlap
    ).probabilities


def labels_and_removed(
    model: LoadedModel,
    probs: np.ndarray,
    *,
    min_component: int = 0,
    min_enhancing: int = 0,
    spacing=None,
    max_distance: float = 0.0,
    min_lesion: dict | None = None,
) -> tuple[np.ndarray, int, int]:
    """Label values from probabilities (regions above 0.5, or the most probable class), post-processed once
    (:func:`medseg3d.postprocess.postprocess_counted`), and the numbers of tumour voxels that the
    far-component removal and the lesion-size rule took.

    Args:
        model: the model (its kind and label scheme).
        probs: (outputs, X, Y, Z) probabilities.
        min_component: foreground components (26-connected) under this many voxels become background (0:
            none).
        min_enhancing: if fewer voxels than this are enhancing tumour (BraTS 4), they become necrosis (0:
            off).
        spacing: the grid's voxel size in mm (needed with ``max_distance``).
        max_distance: tumour components farther than this (mm) from the largest become background (0: off).
        min_lesion: BraTS region -> voxels: smaller components of that region become the next outer region
            (:func:`medseg3d.postprocess.demote_small_region_components`; None or empty: off).

    Returns:
        (label values (X, Y, Z), tumour voxels the far-component removal took, tumour voxels the lesion-size
        rule took).

    Raises:
        InputError: ``max_distance`` without ``spacing``.
    """
    if model.kind == "region":
        labels = model.scheme.regions_to_values(probs > 0.5)
    else:
        labels = model.scheme.to_values(probs.argmax(0))
    return postprocess_counted(
        labels,
        model.scheme,
        spacing=spacing,
        min_component=min_component,
        min_enhancing=min_enhancing,
        max_distance_mm=max_distance,
        min_lesion=min_lesion,
    )


def probabilities_to_labels(
    model: LoadedModel,
    probs: np.ndarray,
    *,
    min_component: int = 0,
    min_enhancing: int = 0,
    spacing=None,
    max_distance: float = 0.0,
    min_lesion: dict | None = None,
) -> np.ndarray:
    """Label values from probabilities, post-processed (:func:`labels_and_removed` without the count).

    Args:
        model, probs, min_component, min_enhancing, spacing, max_distance, min_lesion: as
            :func:`labels_and_removed` (``max_distance`` in mm needs the grid's ``spacing``).
    """
    return labels_and_removed(
        model,
        probs,
        min_component=min_component,
        min_enhancing=min_enhancing,
        spacing=spacing,
        max_distance=max_distance,
        min_lesion=min_lesion,
    )[0]


def segment_arrays(
    model: LoadedModel,
    image: np.ndarray,
    affine: np.ndarray,
    options: PredictOptions | None = None,
    *,
    return_probabilities: bool = False,
    **option_values,
):
    """Label values (X, Y, Z) for raw channels ``image`` (C, X, Y, Z) on the grid of ``affine`` (no
    alignment).

    Args:
        model: the loaded model.
        image, affine: channels in the model's order, already on the model's kind of grid, and their affine.
        options: :class:`PredictOptions` (its ``align`` and ``space`` do not apply here); keyword arguments
            (``mirror``, ``min_component`` ...) replace its fields.
        return_probabilities: also return the probabilities (outputs, X, Y, Z).

    Raises:
        InputError: an option out of range (:meth:`PredictOptions.resolve`).
    """
    opts = PredictOptions.of(options, **option_values).resolve(model)
    full = grid_probabilities(
        model, image, affine, mirror=opts.mirror, sliding_window=opts.sliding_window, overlap=opts.overlap
    )
    labels = probabilities_to_labels(
        model, full, **opts.postprocessing(np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))
    )
    return (labels, full) if return_probabilities else labels


def segment_volumes(
    model: LoadedModel,
    volumes: dict[str, Volume],
    options: PredictOptions | None = None,
    *,
    progress=None,
    **option_values,
) -> CaseResult:
    """Segment one case given as channel volumes on any grids (see :mod:`medseg3d.raw`): the spine of predict.

    Args:
        model: the loaded model.
        volumes: modality -> Volume, the model's modalities (others are ignored).
        options: :class:`PredictOptions`; keyword arguments (``align`` or its old name ``preprocess``,
            ``space``, ``uncertainty`` ...) replace its fields. With ``space="native"`` the labels lie on the
            reference scan's grid (T1ce for BraTS models; with ``align="none"`` the first channel's), with
            ``atlas`` on the model's grid. With ``uncertainty`` an ensemble's members' tumour volumes go into
            ``confidence["member_volumes_ml"]``; the labels are the same as without.
        progress: a callable given one line per step (e.g. ``print``), or None.

    Returns:
        A :class:`CaseResult` (nothing is written).

    Raises:
        InputError: a modality is missing, an option is out of range, or the scans cannot be aligned.
    """
    opts = PredictOptions.of(options, **option_values).resolve(model)
    missing = [m for m in model.modalities if m not in volumes]
    if missing:
        raise InputError(
            f"modality {', '.join(missing)} is missing; the model needs {', '.join(model.modalities)}"
        )
    # align: scans as exported -> the model's grid
    aligned = align(
        {m: volumes[m] for m in model.modalities},
        model_space(model.meta),
        opts.align,
        progress=progress,
        template_fit=opts.template_fit,
    )
    if opts.space == "atlas" and aligned.mode != "full":
        raise InputError(
            "--space atlas needs the full alignment (--align full); this input is "
            f"'{aligned.mode}', already on its own grid"
        )
    if progress and aligned.mode != "none":
        progress(f"segmenting on the model's grid {'x'.join(str(s) for s in aligned.shape)}")
    # preprocess -> infer -> undo (on the model's grid)
    t0 = time.perf_counter()
    prediction = grid_prediction(
        model,
        aligned.image(model.modalities),
        aligned.affine,
        mirror=opts.mirror,
        sliding_window=opts.sliding_window,
        overlap=opts.overlap,
        passes=opts.uncertainty,
    )
    probs, entropy = prediction.probabilities, prediction.uncertainty
    seconds = {"segment": round(time.perf_counter() - t0, 2)}
    # -> the output grid
    if opts.space == "atlas":
        grid = Volume(np.zeros(aligned.shape, np.uint8), aligned.affine)
        to_grid = _identity
    else:
        t0 = time.perf_counter()
        fill = background_fill(model)
        to_grid = lambda p: aligned.to_native(p, fill)
        probs = to_grid(probs)
        # outside the model's grid nothing was seen: certain, as outside the brain box
        if entropy is not None:
            entropy = aligned.to_native(entropy[None], [0.0])[0]
        seconds["map back"] = round(time.perf_counter() - t0, 2)
        grid = aligned.native
    # labels, post-processed once
    post = opts.postprocessing(grid.spacing)
    labels, far_removed, small_removed = labels_and_removed(model, probs, **post)
    confidence = prediction.confidence
    if prediction.member_probabilities is not None and prediction.refinement is None:
        t0 = time.perf_counter()
        confidence = dict(confidence, member_volumes_ml=member_volumes(model, prediction, to_grid, post))
        seconds["members' volumes"] = round(time.perf_counter() - t0, 2)
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    return CaseResult(
        grid.with_array(labels),
        probs,
        aligned,
        seconds,
        entropy,
        confidence,
        prediction.refinement,
        round(far_removed * voxel_ml, 2),
        round(small_removed * voxel_ml, 2),
    )


def _identity(p):
    return p


def member_volumes(
    model: LoadedModel, prediction: GridPrediction, to_grid, post: dict
) -> dict[str, list[float]]:
    """Each ensemble member's tumour volumes in ml, region -> [one per member], measured as the ensemble's
    are: its probabilities pasted back, turned into labels with the same post-processing, one member at a time
    (a member on a full 240 x 240 x 155 grid is about 100 MB).

    Args:
        model: the ensemble.
        prediction: the grid prediction holding each member's probabilities.
        to_grid: takes probabilities from the preprocessed grid to the output's.
        post: :func:`probabilities_to_labels`'s keyword arguments (with ``spacing``, which the volumes use).
    """
    from ..volumes import volume_summary

    fill_background = model.kind != "region"
    out: dict[str, list[float]] = {}
    for member in prediction.member_probabilities:
        probs = to_grid(undo_probabilities(member, prediction.record, fill_background=fill_background))
        labels = probabilities_to_labels(model, probs, **post)
        for region, ml in volume_summary(labels, post["spacing"], model.scheme)["regions"].items():
            out.setdefault(region, []).append(ml)
    return out


def volumes_from_channels(loaded: LoadedModel, channels) -> dict[str, Volume]:
    """modality -> Volume from a case folder, a list of files or Volumes (model's order), or a dict.

    Args:
        loaded: the model (its modalities and their order).
        channels: a case folder, a file or Volume, a list of them in the model's order, or {modality: file or
            Volume}.

    Raises:
        InputError: a modality is missing, files and Volumes are mixed, or the files cannot be resolved or
            read.
    """
    if isinstance(channels, dict):
        names = normalise_modalities(list(channels))
        missing = [m for m in loaded.modalities if m not in names]
        if missing:
            raise InputError(
                f"modality {', '.join(missing)} is missing; the model needs {', '.join(loaded.modalities)}"
            )
        lookup = dict(zip(names, channels.values()))
        channels = [lookup[m] for m in loaded.modalities]
    if isinstance(channels, (str, os.PathLike, Volume)):
        channels = [channels]
    channels = list(channels)
    if all(isinstance(c, Volume) for c in channels):
        if len(channels) != len(loaded.modalities):
            raise InputError(
                f"the model needs {len(loaded.modalities)} channels ({', '.join(loaded.modalities)}), "
                f"got {len(channels)}"
            )
        return dict(zip(loaded.modalities, channels))
    if any(isinstance(c, Volume) for c in channels):
        raise InputError("give the channels either all as files or all as Volumes")
    case, _ = resolve_case_channels([Path(p) for p in channels], loaded.modalities)
    return {name: vol for name, _, vol in case.read_channels()}


def segment(model, channels, options: PredictOptions | None = None, **option_values) -> Volume:
    """Segment one case in memory and return the label map as a :class:`Volume`.

    Args:
        model: a bundled name, run folder, model file or :class:`LoadedModel`.
        channels: a case folder, a list of channel files or :class:`Volume` objects (model's channel order),
            or a dict modality -> file/Volume. Raw scans (skull on, each on its own grid) are accepted.
        options: :class:`PredictOptions`; keyword arguments (``align``, ``space``, ``mirror`` ...) replace its
            fields.

    Returns:
        The labels, on the reference scan's grid (``space="native"``) or the model's (``"atlas"``).

    Raises:
        InputError: unreadable or incomplete channels, or an option out of range.

    Example:
        >>> labels = medseg3d.segment("brats", "../shared/data/brats2018/Brats18_2013_2_1")
        >>> labels.array.max()
        4
        >>> raw = "../shared/data/raw_clinical/TCGA-FG-6692/raw/"
        >>> labels = medseg3d.segment("brats", [raw + f"{m}.nii.gz" for m in ("flair", "t1", "t1ce", "t2")])
    """
    loaded = as_loaded(model)
    opts = PredictOptions.of(options, **option_values).resolve(loaded)
    return segment_volumes(loaded, volumes_from_channels(loaded, channels), opts).labels
