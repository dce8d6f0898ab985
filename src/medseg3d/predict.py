"""Segmenting new cases with a trained model (``medseg3d predict``) and the in-memory API ``segment``.

A model is named by a bundled name (``brats``), a run folder (its ``model.safetensors``), or a
``.safetensors`` file. Its metadata says which channels it needs, how to preprocess and which label values
to write. Prediction preprocesses exactly as training did, infers on the whole preprocessed volume (or in
sliding windows), optionally mirrors, turns probabilities into labels on the original grid (up-sampling
probabilities when the model works at low resolution) and writes the dataset's own label values with the
input's affine, header and file format.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import read_model_file, validate_model
from .datasets import Case, channel_order_warning, find_cases, normalise_modalities, resolve_case_channels
from .errors import InputError, ModelError
from .inference import pick_device, predict_probabilities
from .io import Volume, image_suffix, write_volume
from .labels import LabelScheme
from .precision import check_precision
from .preprocess import PrepConfig, preprocess, undo_probabilities
from .raw.pipeline import Prepared, model_space, prepare
from .train.distributed import remove_stale_temporaries

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass
class LoadedModel:
    """A network ready for inference, with the metadata it was saved with."""

    model: torch.nn.Module
    meta: dict
    scheme: LabelScheme
    prep: PrepConfig
    device: torch.device
    precision: str = "auto"  # what the user asked; "auto" = the model file's default (see compute_precision)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.meta["modalities"])

    @property
    def kind(self) -> str:
        return self.meta.get("kind", "multiclass")

    def inference_settings(self, sliding_window: bool | None, overlap: float | None) -> tuple[bool, float]:
        """(sliding_window, overlap): what the caller asked, else the model file's ``inference`` metadata
        (a model trained on patches may ask to be run in windows of its patch size), else whole volume."""
        defaults = self.meta.get("inference") or {}
        if sliding_window is None:
            sliding_window = bool(defaults.get("sliding_window", False))
        if overlap is None:
            overlap = float(defaults.get("overlap", 0.5))
        if not 0 <= overlap < 1:
            raise InputError(f"--overlap must be in [0, 1), got {overlap}")
        return sliding_window, overlap

    def compute_precision(self) -> str:
        """The precision to run in: what the user asked, else the model file's ``inference.precision``
        (set for a model whose cross-validation was scored in it), else ``auto``."""
        if self.precision != "auto":
            return self.precision
        return (self.meta.get("inference") or {}).get("precision", "auto")


def bundled_models() -> dict[str, Path]:
    """Names of the models shipped inside the package -> their files."""
    return {p.name[: -len(".safetensors")]: p for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))}


def resolve_model_path(ref: str | os.PathLike) -> Path:
    ref_s = str(ref)
    bundled = bundled_models()
    if ref_s in bundled and not Path(ref_s).exists():
        return bundled[ref_s]
    path = Path(ref_s)
    if path.is_dir():
        for name in ("model.safetensors", "best.safetensors", "last.safetensors"):
            if (path / name).is_file():
                return path / name
        raise ModelError(f"{path}: run folder holds no model (model.safetensors); train it first")
    if path.is_file():
        if path.suffix == ".onnx":
            return path
        if path.suffix != ".safetensors":
            raise ModelError(f"{path}: not a model file; give a .safetensors or .onnx file, a run folder or a bundled name")
        return path
    names = ", ".join(bundled) or "none installed"
    raise ModelError(f"{ref_s}: no such model file, run folder or bundled model (bundled: {names})")


def load_model(ref: str | os.PathLike, device: str = "auto", precision: str = "auto") -> LoadedModel:
    """Load a model by bundled name, run folder or file; metadata is checked before use.

    ``precision`` (``auto`` / ``fp32`` / ``mixed``, see :mod:`medseg3d.precision`) is the one inference runs
    in; ``auto`` takes the model file's own default."""
    check_precision(precision)
    from .nets import build_network

    path = resolve_model_path(ref)
    if path.suffix == ".onnx":
        from .export import load_onnx_model

        return load_onnx_model(path, device)
    meta, state = read_model_file(path)
    validate_model(meta, state, path)  # hostile or broken metadata and NaN weights: one clear line, no run
    try:
        model = build_network(meta["network"], int(meta["in_channels"]), int(meta["n_outputs"]), **meta.get("net_args", {}))
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: weights do not fit network '{meta['network']}' ({str(exc).splitlines()[0][:160]})") from exc
    dev = pick_device(device)
    model.to(dev).eval()
    scheme = LabelScheme.from_dict(meta["labels"])
    if scheme.n_outputs != int(meta["n_outputs"]):
        raise ModelError(f"{path}: label scheme has {scheme.n_outputs} outputs but the network {meta['n_outputs']}")
    return LoadedModel(model, meta, scheme, PrepConfig.from_dict(meta["preprocess"]), dev, precision)


def _as_model(model) -> LoadedModel:
    return model if isinstance(model, LoadedModel) else load_model(model)


def remove_small_components(labels: np.ndarray, min_voxels: int) -> np.ndarray:
    """Set connected foreground components (26-connectivity) smaller than ``min_voxels`` to background."""
    if min_voxels <= 0:
        return labels
    from scipy import ndimage

    comp, n = ndimage.label(labels > 0, structure=np.ones((3, 3, 3)))
    if n == 0:
        return labels
    sizes = np.bincount(comp.ravel())
    small = sizes < min_voxels
    small[0] = False
    out = labels.copy()
    out[small[comp]] = 0
    return out


def _check_enhancing_scheme(scheme: LabelScheme) -> None:
    if tuple(scheme.regions.get("ET", ())) != (4,) or 1 not in scheme.values:
        raise InputError("--min-enhancing needs a BraTS model (labels 1 necrosis, 2 edema, 4 enhancing)")


def relabel_small_enhancing(labels: np.ndarray, scheme: LabelScheme, min_voxels: int) -> np.ndarray:
    """BraTS: if fewer than ``min_voxels`` voxels are enhancing tumour (4), call them necrosis (1) instead.

    A case without enhancing tumour (many low-grade gliomas) scores ET Dice 0 for any enhancing voxel
    predicted and 1 for none; a few hundred voxels of enhancement are more often noise than a real
    enhancing rim. The tumour core (1 + 4) and whole tumour are unchanged.
    """
    if min_voxels <= 0:
        return labels
    _check_enhancing_scheme(scheme)
    enhancing = labels == 4
    if 0 < int(enhancing.sum()) < min_voxels:
        labels = labels.copy()
        labels[enhancing] = 1
    return labels


def _check_options(model: LoadedModel, min_component: int, min_enhancing: int) -> None:
    for name, value in (("--min-component", min_component), ("--min-enhancing", min_enhancing)):
        if value < 0:
            raise InputError(f"{name} must be a number of voxels >= 0, got {value}")
    if min_enhancing > 0:
        _check_enhancing_scheme(model.scheme)  # before minutes of inference


def grid_probabilities(model: LoadedModel, image: np.ndarray, affine: np.ndarray, *, mirror: bool = False,
                       sliding_window: bool | None = None, overlap: float | None = None) -> np.ndarray:
    """The model's probabilities (outputs, X, Y, Z) for raw channels ``image`` (C, X, Y, Z), on their grid.

    Preprocesses as training did (crop, z-score, resampling), infers, and undoes the preprocessing: region
    models give 0 outside the brain, multi-class models background there.
    """
    if image.shape[0] != model.meta["in_channels"]:
        raise InputError(f"the model needs {model.meta['in_channels']} channels ({', '.join(model.modalities)}), "
                         f"the input has {image.shape[0]}")
    sliding_window, overlap = model.inference_settings(sliding_window, overlap)
    x, _, record = preprocess(image, affine, model.prep)
    patch = tuple(model.meta["patch"]) if (sliding_window and model.meta.get("patch")) else None
    if sliding_window and patch is None:
        patch = (128, 128, 128)
    probs = predict_probabilities(model.model, x, kind=model.kind, patch=patch, overlap=overlap, mirror=mirror,
                                  device=model.device, precision=model.compute_precision()).numpy()
    if model.kind == "region":
        # region probabilities: outside the brain every region is absent (probability 0)
        return undo_probabilities(probs, record, fill_background=False)
    return undo_probabilities(probs, record)


def background_fill(model: LoadedModel) -> list[float]:
    """Probability of each output where there is no data: 0 for regions, 1 for a background class."""
    n = int(model.meta["n_outputs"])
    return [0.0] * n if model.kind == "region" else [1.0] + [0.0] * (n - 1)


def probabilities_to_labels(model: LoadedModel, probs: np.ndarray, *, min_component: int = 0,
                            min_enhancing: int = 0) -> np.ndarray:
    """Label values from probabilities (regions above 0.5, or the most probable class), then post-processing."""
    if model.kind == "region":
        labels = model.scheme.regions_to_values(probs > 0.5)
    else:
        labels = model.scheme.to_values(probs.argmax(0))
    return relabel_small_enhancing(remove_small_components(labels, min_component), model.scheme, min_enhancing)


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
    return_probabilities: bool = False,
):
    """Label values (X, Y, Z) for raw channels ``image`` (C, X, Y, Z) on the grid of ``affine``.

    ``sliding_window`` / ``overlap`` left as ``None`` take the model's own defaults
    (:meth:`LoadedModel.inference_settings`).
    """
    _check_options(model, min_component, min_enhancing)
    full = grid_probabilities(model, image, affine, mirror=mirror, sliding_window=sliding_window, overlap=overlap)
    labels = probabilities_to_labels(model, full, min_component=min_component, min_enhancing=min_enhancing)
    return (labels, full) if return_probabilities else labels


@dataclass
class CaseResult:
    """One segmented case: labels on the output grid, probabilities there, and how the input was prepared."""

    labels: Volume
    probabilities: np.ndarray
    prepared: Prepared
    seconds: dict


def segment_volumes(model: LoadedModel, volumes: dict[str, Volume], *, preprocess: str = "auto",
                    space: str = "native", progress=None, mirror: bool = False, sliding_window: bool | None = None,
                    overlap: float | None = None, min_component: int = 0, min_enhancing: int = 0) -> CaseResult:
    """Segment one case given as channel volumes on any grids (see :mod:`medseg3d.raw`).

    Args:
        volumes: modality -> Volume, the model's modalities.
        preprocess: ``auto`` (decide from the input), ``full``, ``resample`` or ``none``.
        space: ``native`` writes labels on the reference scan's grid (T1ce for BraTS models; with
            ``preprocess none`` the first channel's, as always); ``atlas`` on the model's grid (after ``full``:
            the 240 x 240 x 155 BraTS grid).
        progress: a callable given one line per step (e.g. ``print``), or None.
    """
    import time

    if space not in ("native", "atlas"):
        raise InputError(f"--space must be 'native' or 'atlas', got {space!r}")
    _check_options(model, min_component, min_enhancing)
    missing = [m for m in model.modalities if m not in volumes]
    if missing:
        raise InputError(f"modality {', '.join(missing)} is missing; the model needs {', '.join(model.modalities)}")
    ordered = {m: volumes[m] for m in model.modalities}
    prepared = prepare(ordered, model_space(model.meta), preprocess, progress=progress)
    if space == "atlas" and prepared.mode != "full":
        raise InputError("--space atlas needs the full preprocessing (--preprocess full); this input is "
                         f"'{prepared.mode}', already on its own grid")
    if progress and prepared.mode != "none":
        progress(f"segmenting on the model's grid {'x'.join(str(s) for s in prepared.shape)}")
    t0 = time.perf_counter()
    probs = grid_probabilities(model, prepared.image(model.modalities), prepared.affine, mirror=mirror,
                               sliding_window=sliding_window, overlap=overlap)
    seconds = {"segment": round(time.perf_counter() - t0, 2)}
    if space == "atlas":
        grid = Volume(np.zeros(prepared.shape, np.uint8), prepared.affine)
    else:
        t0 = time.perf_counter()
        probs = prepared.to_native(probs, background_fill(model))
        seconds["map back"] = round(time.perf_counter() - t0, 2)
        grid = prepared.native
    labels = probabilities_to_labels(model, probs, min_component=min_component, min_enhancing=min_enhancing)
    return CaseResult(grid.with_array(labels), probs, prepared, seconds)


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
            min_enhancing: int = 0) -> Volume:
    """Segment one case in memory and return the label map as a :class:`Volume`.

    Args:
        model: a bundled name, run folder, model file or :class:`LoadedModel`.
        channels: a case folder, a list of channel files or :class:`Volume` objects (model's channel order),
            or a dict modality -> file/Volume. Raw scans (skull on, each on its own grid) are accepted.
        preprocess: ``auto``, ``full``, ``resample`` or ``none`` (see :mod:`medseg3d.raw.pipeline`).
        space: ``native`` (the T1ce's grid for raw input) or ``atlas`` (the BraTS grid, after ``full``).

    Example:
        >>> labels = medseg3d.segment("brats", "../shared/data/brats2018/Brats18_2013_2_1")
        >>> labels.array.max()
        4
        >>> raw = "../shared/data/raw_clinical/TCGA-FG-6692/raw/"
        >>> labels = medseg3d.segment("brats", [raw + f"{m}.nii.gz" for m in ("flair", "t1", "t1ce", "t2")])
    """
    loaded = _as_model(model)
    volumes = _volumes_from_channels(loaded, channels)
    return segment_volumes(loaded, volumes, preprocess=preprocess, space=space, mirror=mirror,
                           sliding_window=sliding_window, overlap=overlap, min_component=min_component,
                           min_enhancing=min_enhancing).labels


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
) -> list[Path]:
    """Segment one case (``output`` is a file) or every case of a dataset (``output`` is a folder).

    ``preprocess`` and ``space`` are those of :func:`segment_volumes`: scans as exported (skull on, each on its
    own grid) are co-registered, skull-stripped and aligned to the model's grid first, and such a case also
    gets ``<output stem>.json`` (volumes, steps, timings, quality checks) and ``<output stem>.png``.
    ``report=True`` writes ``<output stem>.report.html`` (one offline page: volumes, lesions, pictures, model
    card, preprocessing, warnings) and its ``<output stem>.json`` for every case.
    ``channel_files`` (modality -> file) says which file is which where names do not tell.

    In dataset mode each case goes to ``output/<case>.<input suffix>``; with ``shard=(i, n)`` (or under
    ``torchrun``, from ``RANK``/``WORLD_SIZE``) this process takes every n-th case starting at i; cases whose
    output exists are skipped (so an interrupted or parallel run continues). Returns the written paths.
    """
    from tqdm import tqdm

    loaded = model if isinstance(model, LoadedModel) else load_model(model, device, precision)
    output = Path(output)
    inputs = [Path(p) for p in inputs]
    for p in inputs:
        if not p.exists():
            raise InputError(f"{p}: no such file or folder; check the input path")
    dataset_mode = len(inputs) == 1 and inputs[0].is_dir() and _count_cases(inputs[0]) > 1
    options = dict(mirror=mirror, sliding_window=sliding_window, overlap=overlap, min_component=min_component,
                   min_enhancing=min_enhancing, preprocess=preprocess, space=space)  # the same for every case
    extras = {"report": report}
    if channel_files:
        dataset_mode = False
    if not dataset_mode:
        if image_suffix(output) == "":
            raise InputError(f"{output}: name the output file with an image suffix (.nii.gz, .mha...)")
        if output.exists() and not force:
            raise InputError(f"{output}: exists already; add --force to overwrite it")
        case, lines = resolve_case_channels(inputs, loaded.modalities, channel_files)
        _make_parent(output)
        say = (lambda line: print(line, flush=True)) if progress else None
        for line in lines if say else []:
            say(line)
        return [_predict_case(loaded, case, output, save_probabilities, dict(options, progress=say), extras)]
    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: is a file; for a dataset give an output folder")
    cases = [c.select(loaded.modalities) for c in find_cases(inputs[0])]
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
        remove_stale_temporaries(target)  # left by a killed run of this shard (docs/distributed.md)
        if target.exists() and not force:
            continue
        written.append(_predict_case(loaded, case, target, save_probabilities,
                                     dict(options, progress=tqdm.write if progress else None), extras))
    return written


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path.parent}: cannot create the output folder ({exc.strerror}); choose another -o") from exc


def _count_cases(folder: Path) -> int:
    try:
        return len(find_cases(folder))
    except InputError:
        return 0


def _warn(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


def _predict_case(loaded: LoadedModel, case: Case, target: Path, save_probabilities: bool, options: dict,
                  extras: dict | None = None) -> Path:
    import time

    t0 = time.perf_counter()
    volumes = {name: vol for name, _, vol in case.read_channels()}
    read_seconds = time.perf_counter() - t0
    result = segment_volumes(loaded, volumes, **options)
    say = options.get("progress")
    if result.prepared.mode != "full":
        order = channel_order_warning(result.prepared.image(loaded.modalities), loaded.modalities)
        if order:
            (say or _warn)(f"warning: {case.case_id}: {order}")
    if say and result.prepared.mode != "none":
        say(f"{case.case_id}: preprocessing '{result.prepared.mode}': {result.prepared.reason}")
    grid = result.labels
    if save_probabilities:
        suffix = image_suffix(target)
        prob_path = target.with_name(target.name[: -len(suffix)] + "_probabilities" + suffix)
        write_volume(Volume(np.moveaxis(result.probabilities, 0, -1).astype(np.float32), grid.affine), prob_path)
    t0 = time.perf_counter()
    written = write_volume(result.labels, target)
    raw_summary = None
    if result.prepared.mode != "none":
        from .raw.summary import write_case_summary

        seconds = dict(read=round(read_seconds, 2), **result.seconds, write=round(time.perf_counter() - t0, 2))
        lines, raw_summary = write_case_summary(result.labels, result.prepared, loaded.scheme, target, seconds,
                                                model=loaded.meta.get("name") or str(loaded.meta.get("network")),
                                                inputs={m: str(p) for m, p in case.channels.items()})
        for line in lines if say else []:
            say(line)
    if (extras or {}).get("report"):
        _write_report(loaded, result, volumes, target, raw_summary, say)
    return written


def _write_report(loaded: LoadedModel, result: CaseResult, volumes: dict, target: Path, raw_summary, say) -> None:
    """``<stem>.report.html`` and ``<stem>.json`` (a raw case's summary kept inside it)."""
    from .report import write_case_report

    suffix = image_suffix(target)
    stem = target.with_name(target.name[: -len(suffix)] if suffix else target.name)
    on_grid = {m: v for m, v in volumes.items() if v.same_grid(result.labels)}
    if not on_grid:  # labels on the atlas grid: show the preprocessed channels there
        on_grid = {m: Volume(a, result.prepared.affine) for m, a in result.prepared.channels.items()}
    card = {}
    name = loaded.meta.get("name")
    if name and name in bundled_models():
        card = json.loads((WEIGHTS_DIR / f"{name}.json").read_text(encoding="utf-8")) if (WEIGHTS_DIR / f"{name}.json").is_file() else {}
    steps = [{"step": "preprocess", "mode": result.prepared.mode, "reason": result.prepared.reason}]
    steps += list(result.prepared.steps)
    extra = {"warnings": list((raw_summary or {}).get("warnings", result.prepared.warnings))}
    if raw_summary:
        extra["raw_input"] = raw_summary
    json_path, html_path = write_case_report(result.labels, on_grid, loaded.scheme, stem, card or dict(loaded.meta),
                                             steps, extra)
    if say:
        say(f"wrote {html_path} and {json_path}")
