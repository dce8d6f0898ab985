"""``medseg3d predict`` over one case or a dataset: finding the cases, output names, shards, skipping.

:func:`predict` resolves the options once, then for each case reads its channels, runs the pipeline
(:func:`~.pipeline.segment_volumes`) and writes its outputs (:func:`~.outputs.write_case_outputs`).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ..datasets import Case, check_case_sequences, find_cases, layout_notes, resolve_case_channels
from ..errors import InputError
from ..io import image_suffix, remove_stale_temporaries_of
from ..models import LoadedModel, load_model, with_refiner
from ..review import collecting, fire
from .options import PredictOptions, check_output_format
from .outputs import check_dicom_source, companions, write_case_outputs
from .pipeline import segment_volumes


def output_path_for(case: Case, out_dir: Path) -> Path:
    """Where a dataset's case goes: ``out_dir/<case>.<its first channel's suffix>`` (``.nii.gz`` for DICOM).

    Args:
        case: the case (its id and first channel file).
        out_dir: the output folder.
    """
    first = Path(next(iter(case.channels.values())))
    suffix = image_suffix(first) or ".nii.gz"
    return out_dir / f"{case.case_id}{suffix}"


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"{path.parent}: cannot create the output folder ({exc.strerror}); choose another -o"
        ) from exc


def _cases_in(folder: Path) -> list[Case]:
    """The cases ``find_cases`` sees in ``folder``; none where it sees no dataset (e.g. a folder of files
    whose names :func:`resolve_case_channels` must identify)."""
    try:
        return find_cases(folder)
    except InputError:
        return []


def _shard_of(cases: list[Case], shard: tuple[int, int] | None) -> list[Case]:
    """This process's share: every n-th case from i (``shard=(i, n)``, or ``RANK``/``WORLD_SIZE`` under
    torchrun)."""
    if shard is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        shard = (int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"]))
    if shard is None:
        return cases
    i, n = shard
    if not 0 <= i < n:
        raise InputError(f"--shard {i}/{n}: the index must be between 0 and {n - 1}")
    return cases[i::n]


def predict_case(
    loaded: LoadedModel, case: Case, target: Path, opts: PredictOptions, *, progress=None, **outputs
) -> Path:
    """Read one case, segment it and write its outputs.

    Args:
        loaded: the model.
        case: the case to read; its channels are checked against their content first (reordered, refused or
            flagged as review, issue 36).
        target: the segmentation file to write.
        opts: the prediction options.
        progress: called with progress lines (None: silent).
        outputs: the keyword arguments of :func:`~.outputs.write_case_outputs` (probabilities, report,
            format).

    Returns:
        ``target``.

    Raises:
        InputError: the case cannot be read, its channels are refused, or the outputs cannot be written.
    """
    with collecting() as checks:  # this case's quality checks: recorded in its JSON, refused with --strict
        t0 = time.perf_counter()
        volumes = {name: vol for name, _, vol in case.read_channels()}
        read_seconds = time.perf_counter() - t0
        # which file is which sequence, by content against the names: reorders, refuses or flags (issue 36)
        volumes, sequences = check_case_sequences(case, volumes, opts.trust_names)
        for line in sequences.lines:
            print(f"note: {line}", file=sys.stderr, flush=True)
        for line in sequences.review:
            fire(case.case_id, line)
        result = segment_volumes(loaded, volumes, opts, progress=progress)
        return write_case_outputs(
            loaded,
            case,
            target,
            result,
            volumes,
            opts,
            read_seconds=read_seconds,
            say=progress,
            checks=checks,
            sequences=sequences.record(),
            **outputs,
        )


def predict(
    model,
    inputs: list,
    output: str | os.PathLike,
    options: PredictOptions | None = None,
    *,
    save_probabilities: bool = False,
    force: bool = False,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
    device: str = "auto",
    precision: str = "auto",
    channel_files: dict | None = None,
    report: bool = False,
    anonymise: bool = False,
    output_format: str | None = None,
    refine: str | None = "auto",
    **option_values,
) -> list[Path]:
    """Segment one case (``output`` is a file) or every case of a dataset (``output`` is a folder).

    Args:
        model: a bundled name, run folder, model file or :class:`LoadedModel`.
        inputs: a case folder, the case's channel files, or one dataset folder.
        output: the labels' file (one case) or a folder (a dataset: ``output/<case>.<input suffix>``).
        options: :class:`PredictOptions`; keyword arguments (``mirror``, ``align`` or its old name
            ``preprocess``, ``space``, ``uncertainty``, ``max_distance`` ...) replace its fields. Raw scans
            are aligned to the model's grid first and such a case also gets ``<output stem>.json`` and
            ``.png``.
        save_probabilities: also write the probabilities (after the model's calibration, if it has one).
        force: overwrite existing outputs (a dataset's existing outputs are otherwise skipped, so that an
            interrupted or parallel run continues).
        shard: ``(i, n)``: this process takes every n-th case from i (under ``torchrun``: from
            ``RANK``/``WORLD_SIZE``).
        progress: print one line per step and a progress bar.
        device, precision: where and in which precision to run (``auto``: CUDA when present).
        channel_files: modality -> file, where names do not tell which file is which.
        report: also write the report a clinician reads (``<output stem>.report.html``, ``.pdf``, ``.dcm`` for
            a DICOM input: :mod:`medseg3d.clinical.report`) and its ``.json`` for every case.
        anonymise: with ``report``, leave the patient, study and series out (and write no ``.dcm``).
        output_format: ``dicom-seg`` also writes ``<output stem>.seg.dcm`` referencing the input DICOM series
            (written by default when there is one; ``nifti``: not).
        refine: ``auto`` runs the refiner the model has or names (:mod:`medseg3d.cascade`); ``none`` none;
            else the refiner to run.

    Returns:
        The written label files.

    Raises:
        InputError: missing inputs, an output that exists without ``force``, options out of range, or a case
            that cannot be read or aligned (one line each, before any file of that case is written).
        ModelError: a model file that cannot be loaded.
    """
    from tqdm import tqdm

    loaded = (
        with_refiner(model, refine)
        if isinstance(model, LoadedModel)
        else load_model(model, device, precision, refine)
    )
    opts = PredictOptions.of(options, **option_values).resolve(loaded)
    check_output_format(output_format, opts.space)
    output = Path(output)
    inputs = [Path(p) for p in inputs]
    for p in inputs:
        if not p.exists():
            raise InputError(f"{p}: no such file or folder; check the input path")
    outputs = dict(
        save_probabilities=save_probabilities, report=report, output_format=output_format, anonymise=anonymise
    )
    # one scan of a folder says whether it is a dataset (several cases) and gives its cases
    found = _cases_in(inputs[0]) if len(inputs) == 1 and inputs[0].is_dir() and not channel_files else []
    if len(found) <= 1:
        if image_suffix(output) == "":
            raise InputError(f"{output}: name the output file with an image suffix (.nii.gz, .mha...)")
        if output.exists() and not force:
            raise InputError(f"{output}: exists already; add --force to overwrite it")
        case, lines = resolve_case_channels(inputs, loaded.modalities, channel_files)
        check_dicom_source(case, output_format)
        _make_parent(output)
        say = (lambda line: print(line, flush=True)) if progress else None
        for line in lines if say else []:
            say(line)
        return [predict_case(loaded, case, output, opts, progress=say, **outputs)]
    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: is a file; for a dataset give an output folder")
    cases = [c.select(loaded.modalities) for c in found]
    for note in layout_notes(cases) if progress else ():
        print(f"note: {note}", flush=True)
    for case in cases:
        check_dicom_source(case, output_format)
    cases = _shard_of(cases, shard)
    output.mkdir(parents=True, exist_ok=True)
    if not os.access(output, os.W_OK):
        raise InputError(f"{output}: output folder is not writable; choose another -o")
    written = []
    for case in tqdm(cases, desc="predict", unit="case", disable=not progress):
        target = output_path_for(case, output)
        # left by a killed run of this shard (docs/distributed.md)
        remove_stale_temporaries_of(target, companions(target))
        if target.exists() and not force:
            continue
        written.append(
            predict_case(loaded, case, target, opts, progress=tqdm.write if progress else None, **outputs)
        )
    return written
