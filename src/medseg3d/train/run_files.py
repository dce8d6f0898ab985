"""A training run's folder: its settings, checkpoints and the leftovers of an interrupted run.

``RUN/config.json`` holds the settings; ``RUN/last.pt`` the training state after the last finished epoch
(model, optimiser, gradient scaler, counters, RNG states) and ``RUN/previous.pt`` the one before it, kept so
that a damaged ``last.pt`` costs one epoch, not the run. Files are written under temporary names and renamed;
a run killed mid-write leaves only such temporaries, which the next start removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_checkpoint, read_model_file
from ..errors import InputError, MedsegError
from ..plotting import save_figure

CHECKPOINT_KEYS = (
    "model",
    "optimizer",
    "scaler",
    "epoch",
    "iteration",
    "elapsed",
    "best",
    "best_epoch",
    "history",
    "rng",
)
PREVIOUS_CHECKPOINT = "previous.pt"


def warn(message: str) -> None:
    """Print ``medseg3d: warning: <message>`` on stderr."""
    print(f"medseg3d: warning: {message}", file=sys.stderr)


def read_run_settings(out: Path) -> dict:
    """A run folder's settings: ``config.json``, else (missing or damaged) the ``trained_with`` record inside
    its last model file, with a warning; one clear line when neither is readable."""
    path = Path(out) / "config.json"
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
        problem = (
            None
            if isinstance(settings, dict)
            else f"holds a JSON {type(settings).__name__}, not a run's settings"
        )
    except FileNotFoundError:
        problem = "is missing"
    except (OSError, UnicodeDecodeError) as exc:
        problem = f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
    except json.JSONDecodeError:
        problem = "is not valid JSON"
    if problem is None:
        _check_against_model_file(Path(out), settings)
        return settings
    for name in ("last.safetensors", "best.safetensors", "model.safetensors"):
        try:
            meta, _ = read_model_file(Path(out) / name)
        except MedsegError:
            continue
        if isinstance(meta.get("trained_with"), dict):
            warn(f"{path} {problem}; resuming with the settings recorded in {name}")
            return meta["trained_with"]
    raise InputError(
        f"{path}: {problem}, and no model file of the run records its settings; restore config.json "
        "or start a new run with another --out"
    )


# settings that no resume changes: config.json and the trained_with record of the run's last model file
# always agree on them, so a difference means one of the two files was damaged or edited
# not iters_per_epoch: config.json records the computed default
_FIXED_SETTINGS = (
    "net",
    "net_args",
    "loss",
    "labels",
    "lr",
    "weight_decay",
    "schedule",
    "patch",
    "crop",
    "crop_size",
    "downsample",
    "spacing",
    "batch",
    "accumulate",
    "seed",
    "augment",
    "foreground_p",
    "precision",
)


def _check_against_model_file(out: Path, settings: dict) -> None:
    try:
        meta, _ = read_model_file(out / "last.safetensors")
    except MedsegError:
        return  # no model file yet (or a damaged one, which resume does not read)
    recorded = meta.get("trained_with")
    if not isinstance(recorded, dict):
        return
    differ = [
        f"{k} {settings[k]!r} vs {recorded[k]!r}"
        for k in _FIXED_SETTINGS
        if k in settings and k in recorded and json.dumps(settings[k]) != json.dumps(recorded[k])
    ]
    if differ:
        raise InputError(
            f"{out}: config.json and last.safetensors disagree on {'; '.join(differ[:3])}; one was "
            "damaged or edited: restore config.json, or delete it to resume with the model file's"
        )


def rng_state(np_rng: np.random.Generator, gen: torch.Generator) -> dict:
    """The state of the training's random streams, for the checkpoint.

    Args:
        np_rng: the case/patch sampling generator.
        gen: the augmentation-seed generator.

    Returns:
        {"numpy", "torch", "augment", "python"}: numpy's and Python's as JSON text, torch's as tensors.
    """
    return {
        "numpy": json.dumps(np_rng.bit_generator.state),
        "torch": torch.get_rng_state(),
        "augment": gen.get_state(),
        "python": json.dumps(random.getstate()),
    }


def set_rng_state(state: dict, np_rng: np.random.Generator, gen: torch.Generator) -> None:
    """Put back the random streams saved by :func:`rng_state`.

    Args:
        state: :func:`rng_state`'s dict.
        np_rng, gen: the generators to restore (in place); torch's and Python's global streams are restored
            too.
    """
    np_rng.bit_generator.state = json.loads(state["numpy"])
    torch.set_rng_state(state["torch"])
    gen.set_state(state["augment"])
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Delete the temporary files that a run killed mid-write leaves in its folder (``.last.pt.*.tmp``,
    ``log.csv.tmp``, ...); never a finished file. Returns what was removed."""
    removed = []
    for path in Path(out).iterdir() if Path(out).is_dir() else []:
        name = path.name
        if path.is_file() and (
            (name.startswith(".") and name.endswith((".tmp", ".tmp.png")))
            or name in ("log.csv.tmp", "config.json.tmp", "split.json.tmp")
        ):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def check_writable(out: Path) -> None:
    """``out`` can be made and written, judged from its nearest existing folder (nothing is created here)."""
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"{out}: cannot be made, {probe} is a file; choose another --out")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{out}: {probe} is not writable; choose another --out")


def write_failed(out: Path, exc: OSError) -> InputError:
    """One line for a run folder that cannot be written (disk full, permissions); its temporaries removed.

    Args:
        out: the run folder.
        exc: the error of the write.

    Returns:
        The InputError to raise, naming the reason and the command that continues the run.
    """
    with contextlib.suppress(OSError):
        remove_stale_temporaries(out)
    reason = exc.strerror or str(exc)
    return InputError(
        f"{out}: cannot write the run's files ({reason}); free space or fix the folder, then continue "
        f"with: medseg3d train --out {out} --resume"
    )


class _DamagedCheckpoint(Exception):
    """A checkpoint that was read but does not fit the run (the message says how)."""


def _restore_checkpoint(ckpt, model, optimizer, scaler, np_rng, aug_gen) -> dict:
    """Load a checkpoint into the training objects; raises _DamagedCheckpoint naming what does not fit."""
    if not isinstance(ckpt, dict):
        raise _DamagedCheckpoint("it is not a training checkpoint")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        what = "the optimiser state" if "optimizer" in missing else ", ".join(missing)
        raise _DamagedCheckpoint(f"it lacks {what}")
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
        reason = str(exc).splitlines()[-1].strip()[:160]
        raise _DamagedCheckpoint(f"its weights do not fit the run's network ({reason})") from exc
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        reason = str(exc).splitlines()[0][:160]
        raise _DamagedCheckpoint(f"its optimiser state does not fit the network ({reason})") from exc
    for group in optimizer.param_groups:
        for param in group["params"]:
            for name, value in optimizer.state.get(param, {}).items():
                if torch.is_tensor(value) and value.ndim and value.shape != param.shape:
                    raise _DamagedCheckpoint(
                        f"its optimiser state '{name}' has shape {tuple(value.shape)} for "
                        f"weights of shape {tuple(param.shape)}"
                    )
    try:
        state = {k: ckpt[k] for k in ("epoch", "iteration", "elapsed", "best", "best_epoch")}
        state["history"] = json.loads(ckpt["history"])
        set_rng_state(ckpt["rng"], np_rng, aug_gen)
        if not isinstance(state["history"], list) or int(state["iteration"]) < 0:
            raise ValueError("bad counters")
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0][:120]
        raise _DamagedCheckpoint(f"its counters or random states are damaged ({reason})") from exc
    return state


def load_resume_state(out: Path, model, optimizer, scaler, np_rng, aug_gen) -> dict:
    """The training state of the run in ``out``, restored into the objects given.

    Args:
        out: the run folder.
        model, optimizer, scaler: restored in place from the checkpoint.
        np_rng, aug_gen: the random streams, restored in place.

    Returns:
        The checkpoint's state (epoch, history and the rest), from ``last.pt``, else (damaged or missing)
        from ``previous.pt`` with a warning.

    Raises:
        InputError: neither checkpoint can be used.
    """
    problems = []
    for name in ("last.pt", PREVIOUS_CHECKPOINT):
        path = out / name
        if not path.is_file():
            if name == "last.pt":
                problems.append(f"{name} is missing")
            continue
        if path.stat().st_size == 0:
            problems.append(f"{name} is empty")
            continue
        try:
            state = _restore_checkpoint(load_checkpoint(path), model, optimizer, scaler, np_rng, aug_gen)
        except (MedsegError, _DamagedCheckpoint) as exc:
            problems.append(f"{name}: {str(exc).removeprefix(str(path) + ': ')}")
            continue
        if problems:
            warn(
                f"{out}: {'; '.join(problems)}; resuming from {name} (epoch {state['epoch']}, "
                "an epoch earlier)"
            )
        return state
    raise InputError(
        f"{out}: cannot resume, the checkpoint is damaged ({'; '.join(problems)}); start a new run "
        "with another --out (the weights so far are in last.safetensors)"
    )


def plot_curves(history: list[dict], path: Path) -> None:
    """Draw the training loss and the validation Dice per region against the epoch to a PNG.

    Args:
        history: one dict per epoch (``epoch``, ``train_loss``, ``dice_*``; empty Dice entries are skipped).
        path: the PNG file (written atomically).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    ep = [h["epoch"] for h in history]
    a.plot(ep, [h["train_loss"] for h in history], label="train loss")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    keys = [k for k in history[-1] if k.startswith("dice_")] if history else []
    for k in keys:
        pts = [(h["epoch"], h[k]) for h in history if h.get(k) not in (None, "")]
        if pts:
            b.plot(*zip(*pts), marker=".", label=k[5:])
    b.set_xlabel("epoch")
    b.set_ylabel("validation Dice")
    b.set_ylim(0, 1)
    if keys:
        b.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
