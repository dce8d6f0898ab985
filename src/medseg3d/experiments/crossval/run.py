"""``medseg3d crossval DATA --preset NAME --out RUN``: every fold of every member trained (resumable,
claimed), each fold's held-out cases segmented exactly as the final model runs, scored, post-processing chosen
by nested cross-validation, calibrated, reported.

Layout of ``RUN``::

    crossval.json          what was asked (dataset, members and their settings, folds); later invocations
                           agree
    plan.json              the ``auto`` preset's plan (``medseg3d plan``), when a member uses it
    split.json             the k-fold split every member shares
    members/<m>/fold<k>/   a training run folder (``medseg3d train``: config.json, log.csv, last.pt, ...)
    members/<m>/all/       the member trained on every case (``--final``): what ``medseg3d bundle`` packs
    fold<k>/model.safetensors      the fold's members as one ensemble (one member: a copy of its last weights)
    fold<k>/pred-final/    held-out label maps as the final model writes them, and their ``metrics.csv``
    fold<k>/pred-final-mirror/  the same with the 8 mirrored passes averaged (a candidate of the choice)
    fold<k>/pred-final-pp/ as the final model runs after nested cross-validation chose mirroring and the
                           far-component removal (``metrics.csv``)
    postprocess.json, calibration.json, timing.json   the choices and measurements (small records)
    report.md, images/     the report (``medseg3d crossval RUN --report`` rebuilds it from the records)

Several invocations may run at once (shells, machines sharing the folder, Slurm array tasks): each takes the
next (member, fold) no live process holds (:func:`~medseg3d.experiments.tasks.claim_task`); ``--fold K`` takes
only fold K (a Slurm array task, or every rank of a ``torchrun`` training one fold with DDP). A killed
invocation is resumed by running the same command again: trainings continue from their last epoch, finished
steps are skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from ...datasets import Case, find_cases, fold_ids, load_split, make_split, save_split
from ...datasets.synthetic import variant_parent
from ...errors import InputError
from ...io import write_json_atomic, write_text_atomic
from ..catalogue import Run, train_config
from ..planning import plan_dataset
from ..task import Task, claim_task, release_task
from .records import RECORD, read_crossval_record

# what is worth keeping of a run folder (git, other machines): the small text records, not weights or images
KEEP_ONLY_RECORDS = """# written by medseg3d crossval: keep the small records \
(configs, logs, metrics, choices), not weights or images
*.pt
*.safetensors
*.nii.gz
*.tmp
claim.json
cache/
"""


def member_settings(preset: str, plan_settings: dict | None) -> dict:
    """The training settings of one member: ``auto`` is the dataset's plan, any other name a preset of
    :data:`medseg3d.train.PRESETS`.

    Args:
        preset: "auto" or a preset name.
        plan_settings: the dataset's planned settings (used for "auto"; None: none).

    Returns:
        A new dict of settings.

    Raises:
        InputError: an unknown preset.
    """
    from ...train import PRESETS

    if preset == "auto":
        return dict(plan_settings or {})
    if preset not in PRESETS:
        raise InputError(
            f"unknown preset '{preset}'; choose auto (planned from the data) or one of {', '.join(PRESETS)}"
        )
    return dict(PRESETS[preset])


def _check_same(out: Path, old: dict, record: dict) -> None:
    for key, what in (("dataset", "dataset"), ("members", "--preset/--members"), ("folds", "--folds")):
        if old.get(key) != record.get(key):
            raise InputError(
                f"{out}: was started with {what} {old.get(key)!r}, now {record.get(key)!r}; repeat the "
                "first command's settings (or leave them out), or choose another --out"
            )
    if record.get("epochs") is not None and old.get("epochs") != record.get("epochs"):
        raise InputError(
            f"{out}: was started with --epochs {old.get('epochs')!r}, now {record['epochs']!r}; leave "
            "--epochs out to continue, or choose another --out"
        )


def setup(
    dataset,
    out,
    preset: str = "auto",
    members: list[str] | None = None,
    folds: int | None = None,
    epochs: int | None = None,
    overrides: dict | None = None,
    split_file: str | Path | None = None,
) -> tuple[dict, list[Case]]:
    """Check the arguments against ``RUN/crossval.json`` and write it, the plan and the split on a first call.

    Args:
        dataset: labelled dataset folder.
        out: the run folder.
        preset: the first member's preset (``auto``: planned from the data).
        members: further members' presets (an ensemble of all of them is the final model).
        folds: number of folds (default 5; a later call may leave it out).
        epochs: epochs per training instead of each preset's own.
        overrides: other training settings for every member (e.g. ``iters_per_epoch``), on a first call.
        split_file: on a first call, this k-fold split instead of a new seeded one (e.g. an earlier
            cross-validation's, so that the two compare fold by fold); its held-out cases must be exactly the
            dataset's original cases (synthetic variants are never held out).

    Returns:
        (record, labelled cases).

    Raises:
        InputError: a missing dataset, too few cases, a preset that does not exist, or settings that differ
            from the folder's first invocation.
    """
    dataset, out = Path(dataset), Path(out)
    if not dataset.exists():
        raise InputError(f"{dataset}: no such dataset folder; check the path")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; --out must be a folder")
    old = read_crossval_record(out)
    names = [preset, *(members or [])]
    if len(set(names)) != len(names):
        raise InputError(f"members {names}: each preset once; an ensemble of copies only costs time")
    if epochs is not None and epochs < 1:
        raise InputError(f"--epochs must be >= 1, got {epochs}")
    cases = find_cases(dataset, require_label=True)
    given_split = None if split_file is None or old is not None else _given_split(split_file, cases, folds)
    if given_split is not None:
        folds = len(given_split["folds"])
    folds = (old or {}).get("folds", 5) if folds is None else int(folds)
    if not 2 <= folds <= len(cases):
        raise InputError(
            f"--folds must be between 2 and the number of labelled cases ({len(cases)}), got {folds}"
        )
    record = {"dataset": str(dataset.resolve()), "members": names, "folds": folds, "epochs": epochs}
    if old is not None:
        _check_same(out, old, record)
        return old, cases
    for name in names:
        member_settings(name, {})  # unknown presets refused before anything is written
    plan = plan_dataset(dataset) if "auto" in names else None
    settings = {name: member_settings(name, plan.settings if plan else None) for name in names}
    if epochs is not None:
        settings = {name: s | {"epochs": epochs, "minutes": None} for name, s in settings.items()}
    if overrides:
        settings = {name: s | overrides for name, s in settings.items()}
    out.mkdir(parents=True, exist_ok=True)
    if plan is not None:
        write_json_atomic(plan.to_dict(), out / "plan.json")
    # synthetic variants (medseg3d synth-nonenhancing) train beside their parent case, never held out
    split = given_split or make_split(
        sorted(c.case_id for c in cases if variant_parent(c.case_id) is None), folds=folds, seed=0
    )
    save_split(split, out / "split.json")
    if not (out / ".gitignore").exists():
        write_text_atomic(KEEP_ONLY_RECORDS, out / ".gitignore")
    record |= {"settings": settings, "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    write_json_atomic(record, out / RECORD)
    return record, cases


def _given_split(path, cases: list[Case], folds: int | None) -> dict:
    """``--split FILE`` checked against the dataset: k folds whose held-out cases are its original cases,
    once each."""
    split = load_split(path)
    if split.get("kind") != "kfold":
        raise InputError(f"{path}: is not a k-fold split; give one made by `medseg3d split --folds K`")
    originals = sorted(c.case_id for c in cases if variant_parent(c.case_id) is None)
    held = sorted(c for f in split["folds"] for c in f["val"])
    if held != originals:
        missing, extra = sorted(set(originals) - set(held)), sorted(set(held) - set(originals))
        raise InputError(
            f"{path}: its folds do not hold out each original case of the dataset once (missing "
            f"{missing[:3]}, unknown {extra[:3]}); give the split made for this dataset"
        )
    if folds is not None and int(folds) != len(split["folds"]):
        raise InputError(f"--folds {folds} but {path} has {len(split['folds'])} folds; leave --folds out")
    return split


def fold_tasks(record: dict, out: Path, final: bool = False) -> list[Task]:
    """Every member's training of every fold (fold-major: all members of fold 0 first), and with ``final``
    each member on every case (fold ``-1``).

    Args:
        record: the run's ``crossval.json`` (folds, members and their settings, dataset).
        out: the crossval run folder (holding ``split.json``).
        final: also the final trainings on all cases.

    Returns:
        The tasks (state "new"; the caller reads their folders).
    """
    split = load_split(out / "split.json")
    tasks = []
    for k in range(record["folds"]):
        for name in record["members"]:
            overrides = record["settings"][name] | dict(
                dataset=record["dataset"],
                out=str(out / "members" / name / f"fold{k}"),
                fold=k,
                folds=record["folds"],
                split_file=str(out / "split.json"),
                progress=False,
            )
            tasks.append(
                Task(
                    Run(name, {}, f"member {name}"),
                    k,
                    Path(overrides["out"]),
                    overrides,
                    fold_ids(split, k)[1],
                )
            )
    if final:
        for name in record["members"]:
            overrides = record["settings"][name] | dict(
                dataset=record["dataset"],
                out=str(out / "members" / name / "all"),
                all_cases=True,
                progress=False,
            )
            tasks.append(Task(Run(name, {}, f"member {name}"), -1, Path(overrides["out"]), overrides, []))
    return tasks


def training_state(folder: Path) -> str:
    """``done`` (``model.safetensors``, written when a training ends), ``resume`` (``last.pt``) or ``new``."""
    if (folder / "model.safetensors").is_file():
        return "done"
    return "resume" if (folder / "last.pt").is_file() else "new"


def train_task(task: Task) -> float:
    """Train (or resume) one task in its folder, its epoch lines to ``train.log``; returns wall seconds."""
    from ...train import train

    cfg = train_config(task.overrides)
    cfg.resume = training_state(task.folder) == "resume"
    task.folder.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(task.folder / "train.log", "a", encoding="utf-8") as log, contextlib.redirect_stdout(log):
        train(cfg)
    return time.monotonic() - t0


def run_crossval(
    dataset,
    out,
    preset: str = "auto",
    members: list[str] | None = None,
    folds: int | None = None,
    epochs: int | None = None,
    fold: int | None = None,
    final: bool = False,
    progress: bool = True,
    report: bool = True,
    overrides: dict | None = None,
    split_file: str | Path | None = None,
    heldout_variants: str | Path | None = None,
) -> dict:
    """Train, predict, score and report a cross-validation (module docstring); resumable and shareable.

    Args:
        dataset, out, preset, members, folds, epochs, overrides, split_file: as :func:`setup`.
        heldout_variants: a folder of synthetic non-enhancing variants (``medseg3d synth-nonenhancing``):
            each fold's model also segments those whose parent it holds out, and the enhancing-tumour rule is
            chosen on them and the real held-out cases (:mod:`.enhancing`); recorded, so that later calls
            use it too.
        fold: only this fold (a Slurm array task; every rank of ``torchrun``).
        final: also train every member on all cases (what ``medseg3d bundle`` packs).
        progress: print what is done.
        report: write ``report.md`` at the end when every fold is scored.

    Returns:
        a summary: trainings run here, held elsewhere, folds scored.

    Raises:
        InputError: as :func:`setup`; a ``--fold`` outside the split; ``torchrun`` without ``--fold``.
    """
    from .report import write_crossval_report
    from .scoring import calibrate_run, choose_postprocessing, fold_scored, score_fold, score_variants

    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if world > 1 and rank != 0:  # under torchrun rank 0 makes the run folder; the others read what it wrote
        _wait_for(Path(out) / RECORD)
    if heldout_variants is not None:
        _check_variants(Path(heldout_variants))  # before anything is written
    record, cases = setup(dataset, out, preset, members, folds, epochs, overrides, split_file)
    out = Path(out)
    if heldout_variants is not None and rank == 0:
        record = _record_variants(out, record, Path(heldout_variants))
    if world > 1 and fold is None:
        raise InputError("under torchrun every process must train the same fold: give --fold K")
    if fold is not None and not 0 <= fold < record["folds"]:
        raise InputError(f"--fold must be between 0 and {record['folds'] - 1}, got {fold}")
    say = print if progress and rank == 0 else (lambda *a, **k: None)
    tasks = [t for t in fold_tasks(record, out, final) if fold is None or t.fold == fold]
    say(
        f"crossval {out}: {', '.join(record['members'])} x {record['folds']} folds"
        + (" + final" if final else "")
        + f"; {sum(training_state(t.folder) == 'done' for t in tasks)} of "
        f"{len(tasks)} trainings done"
    )
    ran, held, seconds = 0, [], {}
    for task in tasks:
        if training_state(task.folder) == "done":
            continue
        if world > 1:  # every rank trains the same fold together; the claim is rank 0's business
            seconds[str(task.folder)] = train_task(task)
            ran += 1
            continue
        if not claim_task(task.folder):
            held.append(task)
            continue
        try:
            if training_state(task.folder) != "done":
                say(
                    f"training {task.run.name} "
                    + (f"fold {task.fold}" if task.fold >= 0 else "on all cases")
                    + f" ({training_state(task.folder)})"
                )
                seconds[str(task.folder)] = train_task(task)
                ran += 1
        finally:
            release_task(task.folder)
    if rank != 0:
        return {"out": str(out), "ran": ran}
    _add_timing(out, seconds)
    cases_by_id = {c.case_id: c for c in cases}
    scored = []
    for k in range(record["folds"]):
        if fold is not None and k != fold:
            continue
        members = [t for t in tasks if t.fold == k]
        if not all(training_state(t.folder) == "done" for t in members):
            continue
        lock = out / f"fold{k}"
        if not claim_task(lock):
            continue
        try:
            # one pass as the model runs, then mirrored: a candidate of the nested choice
            fresh = [score_fold(out, record, k, cases_by_id, say, mirror=m) for m in (False, True)]
            fresh += [score_variants(out, record, k, say, mirror=m) for m in (False, True)]
            if any(fresh):
                scored.append(k)
        finally:
            release_task(lock)
    done = [k for k in range(record["folds"]) if fold_scored(out, record, k)]
    summary = {
        "out": str(out),
        "ran": ran,
        "held_elsewhere": len(held),
        "scored_here": scored,
        "folds_scored": done,
    }
    if held:
        say(
            f"{len(held)} training(s) held by another invocation: "
            + ", ".join(f"{t.run.name}/fold{t.fold}" for t in held)
        )
    if len(done) == record["folds"]:
        choose_postprocessing(out, record, cases_by_id, say)
        calibrate_run(out, record, cases_by_id, say)
        if report:
            summary["report"] = str(write_crossval_report(out))
            say(f"wrote {summary['report']}")
    else:
        say(f"{len(done)} of {record['folds']} folds scored; run the same command again to continue")
    return summary


def _record_variants(out: Path, record: dict, variants: Path) -> dict:
    """``record`` with ``heldout_variants`` set to ``variants`` (written to ``crossval.json``); refused if the
    folder holds no synthetic variant or the run recorded another folder."""
    _check_variants(variants)
    path = str(variants.resolve())
    if record.get("heldout_variants") not in (None, path):
        raise InputError(
            f"{out}: was scored with --heldout-variants {record['heldout_variants']}; give that folder or "
            "none"
        )
    if record.get("heldout_variants") != path:
        record = record | {"heldout_variants": path}
        write_json_atomic(record, out / RECORD)
    return record


def _check_variants(variants: Path) -> None:
    """Refuse a ``--heldout-variants`` folder without a labelled synthetic variant, in one line."""
    try:
        found = find_cases(variants, require_label=True) if variants.is_dir() else []
    except InputError:
        found = []
    if not any(variant_parent(c.case_id) for c in found):
        raise InputError(
            f"{variants}: no labelled synthetic variants (<case>_nonenh); make them with "
            "`medseg3d synth-nonenhancing DATA --out DIR`"
        )


def _wait_for(path: Path, seconds: float = 600.0) -> None:
    t0 = time.monotonic()
    while not path.is_file():
        if time.monotonic() - t0 > seconds:
            raise InputError(f"{path}: not written by rank 0 within {seconds:.0f} s; is rank 0 running?")
        time.sleep(1.0)


def _add_timing(out: Path, seconds: dict) -> None:
    """Wall seconds per training folder, summed over invocations (``RUN/timing.json``)."""
    if not seconds:
        return
    path = out / "timing.json"
    old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    for folder, s in seconds.items():
        key = str(Path(folder).relative_to(out))
        old[key] = round(old.get(key, 0.0) + s, 1)
    write_json_atomic(old, path)
