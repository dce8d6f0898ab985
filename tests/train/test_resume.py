"""Training runs that stop and go on: `--resume` needs only the run folder; a damaged run folder gives one
clear line or a clean resume from the last good checkpoint; stale temporaries go; a full disk or an
unwritable folder gives one line and leaves nothing half-written; unreadable cases are refused or, when
asked, skipped by name. Trainings here run on tiny synthetic cases (seconds)."""

from __future__ import annotations

import csv
import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg3d.checkpoint import save_checkpoint
from medseg3d.cli import main
from medseg3d.errors import InputError
from medseg3d.nets import build_network
from medseg3d.train import TrainConfig, resume_config, train
from medseg3d.train.run_files import (
    PREVIOUS_CHECKPOINT,
    load_resume_state,
    remove_stale_temporaries,
    rng_state,
)

from .synthetic import synthetic_case


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "ds"
    for k in range(3):
        synthetic_case(root, f"s{k}", k)
    return root


def quick(dataset, out, cache, **kw) -> TrainConfig:
    settings = (
        dict(
            dataset=str(dataset),
            out=str(out),
            cache=str(cache),
            epochs=2,
            downsample=1.0,
            progress=False,
            seed=2,
        )
        | kw
    )
    return TrainConfig.from_preset("quick", **settings)


@pytest.fixture(scope="module")
def finished(dataset, tmp_path_factory) -> Path:
    """A run of 2 epochs (so it holds last.pt and previous.pt)."""
    tmp = tmp_path_factory.mktemp("run")
    train(quick(dataset, tmp / "run", tmp / "cache"))
    return tmp / "run"


@pytest.fixture
def run(finished, tmp_path) -> Path:
    """A copy of the finished run to damage or continue."""
    return Path(shutil.copytree(finished, tmp_path / "run"))


def _log_rows(run: Path) -> list[dict]:
    with open(run / "log.csv") as fh:
        return list(csv.DictReader(fh))


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("medseg3d: error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


# ------------------------------------------------------------------------------------- resume from the folder


def test_resume_needs_only_the_run_folder(run, capsys):
    assert (run / PREVIOUS_CHECKPOINT).is_file()  # the checkpoint before the last is kept
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3", "--quiet"]) == 0
    rows = _log_rows(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert json.loads((run / "config.json").read_text(encoding="utf-8"))["epochs"] == 3
    # the README's form: the same dataset, no budget (the run's own: nothing left to do)
    dataset = json.loads((run / "config.json").read_text(encoding="utf-8"))["dataset"]
    assert main(["train", dataset, "--out", str(run), "--resume", "--quiet"]) == 0
    assert "done: 3 epochs" in capsys.readouterr().out
    assert len(_log_rows(run)) == 3


def test_resume_refuses_other_settings(run, capsys):
    assert main(["train", "--out", str(run), "--resume", "--lr", "0.5", "--loss", "dice"]) == 2
    line = _one_line_error(capsys)
    assert "lr 0.001 -> 0.5" in line and "loss 'jaccard-smooth' -> 'dice'" in line
    assert main(["train", "--out", str(run), "--resume", "--preset", "brats"]) == 2
    assert "preset 'quick' -> 'brats'" in _one_line_error(capsys)


def test_resume_config_takes_the_budget_and_compares_the_rest(run, dataset, tmp_path):
    cfg = resume_config(run, {"epochs": 9, "dataset": str(dataset)})
    assert cfg.resume and cfg.epochs == 9 and cfg.lr == 1e-3 and cfg.patch is None and cfg.downsample == 1.0
    synthetic_case(tmp_path / "other", "s0", 0)
    with pytest.raises(InputError, match="dataset .* -> "):
        resume_config(run, {"dataset": str(tmp_path / "other")})
    with pytest.raises(InputError, match="no such run folder"):
        resume_config(tmp_path / "nothing", {})
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no checkpoint [(]last.pt[)] to resume; start without --resume"):
        resume_config(tmp_path / "empty", {})


# ----------------------------------------------------------------------------------------- damaged run
# folders


@pytest.mark.parametrize(
    "content, problem",
    [
        (None, "is missing"),
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "holds a JSON list, not a run.s settings"),
    ],
)
def test_damaged_config_without_model_files_is_one_line(run, content, problem):
    config = run / "config.json"
    config.unlink() if content is None else config.write_text(content, encoding="utf-8")
    for model in run.glob("*.safetensors"):
        model.unlink()
    with pytest.raises(InputError, match=f"config.json: {problem}, and no model file") as err:
        resume_config(run, {})
    assert "\n" not in str(err.value)


def test_config_edited_against_the_model_file_is_refused(run):
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    # a flipped digit, still valid JSON
    (run / "config.json").write_text(json.dumps(config | {"lr": 0.003}), encoding="utf-8")
    with pytest.raises(InputError, match="config.json and last.safetensors disagree on lr 0.003 vs 0.001"):
        resume_config(run, {})
    # a budget is not a fixed setting
    (run / "config.json").write_text(json.dumps(config | {"epochs": 7}), encoding="utf-8")
    assert resume_config(run, {}).epochs == 7


def test_damaged_config_is_recovered_from_the_model_file(run, capsys):
    (run / "config.json").write_text("[1, 2]", encoding="utf-8")
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("medseg3d: warning:") == 1
    assert (
        "holds a JSON list, not a run's settings; resuming with the settings recorded in last.safetensors"
        in err
    )
    assert (
        len(_log_rows(run)) == 3
        and json.loads((run / "config.json").read_text(encoding="utf-8"))["net"] == "kayalibay"
    )


def _small_training_objects(channels: int = 4):
    torch.manual_seed(0)
    model = build_network("tiny-unet", 2, 1, **({} if channels == 4 else {"base_channels": channels}))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    np_rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    return model, optimizer, scaler, np_rng, gen


def _checkpoint(
    folder: Path, epoch: int, channels: int = 4, drop: str | None = None, rotate: bool = True
) -> None:
    """A checkpoint of a small network as train writes it (``rotate``: the one it replaces kept as
    previous)."""
    model, optimizer, scaler, np_rng, gen = _small_training_objects(channels)
    model(torch.randn(1, 2, 16, 16, 16)).mean().backward()
    optimizer.step()
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": epoch,
        "iteration": epoch,
        "elapsed": 1.0,
        "best": -1.0,
        "best_epoch": None,
        "history": json.dumps([{"epoch": e + 1} for e in range(epoch)]),
        "rng": rng_state(np_rng, gen),
    }
    if drop:
        del state[drop]
    save_checkpoint(state, folder / "last.pt", previous=folder / PREVIOUS_CHECKPOINT if rotate else None)


def _damage(folder: Path, how: str) -> str:
    """Damage ``folder/last.pt`` in place (``previous.pt`` untouched); returns the problem resume must
    name."""
    last = folder / "last.pt"
    if how == "empty":
        last.write_bytes(b"")
        return "last.pt is empty"
    if how == "truncated":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
        return "cannot read the checkpoint"
    if how == "no optimiser":
        _checkpoint(folder, 2, drop="optimizer", rotate=False)
        return "lacks the optimiser state"
    if how == "other shapes":
        _checkpoint(folder, 2, channels=8, rotate=False)
        return "its weights do not fit the run's network (size mismatch for"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["empty", "truncated", "no optimiser", "other shapes"])
def test_damaged_checkpoint_resumes_from_the_previous_one(tmp_path, how, capsys):
    _checkpoint(tmp_path, 1)
    _checkpoint(tmp_path, 2)
    problem = _damage(tmp_path, how)
    state = load_resume_state(tmp_path, *_small_training_objects())
    assert state["epoch"] == 1 and len(state["history"]) == 1
    err = capsys.readouterr().err
    assert problem in err and f"resuming from {PREVIOUS_CHECKPOINT} (epoch 1" in err


@pytest.mark.parametrize("how", ["empty", "truncated", "no optimiser", "other shapes"])
def test_damaged_checkpoint_without_a_previous_one_is_one_line(tmp_path, how):
    _checkpoint(tmp_path, 1)
    problem = _damage(tmp_path, how)
    (tmp_path / PREVIOUS_CHECKPOINT).unlink(missing_ok=True)
    with pytest.raises(InputError, match="cannot resume, the checkpoint is damaged") as err:
        load_resume_state(tmp_path, *_small_training_objects())
    assert problem in str(err.value) and "\n" not in str(err.value) and "another --out" in str(err.value)


@pytest.mark.slow
def test_a_damaged_last_checkpoint_in_a_real_run(run, capsys):
    (run / "last.pt").write_bytes(b"")
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3", "--quiet"]) == 0
    assert "last.pt is empty; resuming from previous.pt (epoch 1" in capsys.readouterr().err
    assert [int(r["epoch"]) for r in _log_rows(run)] == [1, 2, 3]
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 3


def test_stale_temporaries_are_removed_on_the_next_start(run, capsys):
    stale = [
        ".last.pt.k2j3h4.tmp",
        ".last.safetensors.x1y2.tmp",
        "log.csv.tmp",
        ".curves.png.tmp.png",
        ".model.safetensors.tmp",
        "config.json.tmp",
    ]
    for name in stale:
        (run / name).write_bytes(b"half")
    kept = sorted(p.name for p in run.iterdir() if p.name not in stale)
    assert sorted(p.name for p in remove_stale_temporaries(run)) == sorted(stale)
    assert sorted(p.name for p in run.iterdir()) == kept
    (run / ".last.pt.abc.tmp").write_bytes(b"half")
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 0
    assert not (run / ".last.pt.abc.tmp").exists() and "interrupted run" in capsys.readouterr().err


# ------------------------------------------------------------------------------- unwritable folder, full disk


def test_unwritable_out_is_one_line_and_writes_nothing(dataset, tmp_path, capsys):
    (tmp_path / "file").write_text("x", encoding="utf-8")
    code = main(
        ["train", str(dataset), "--out", str(tmp_path / "file" / "run"), "--preset", "quick", "--quiet"]
    )
    assert code == 2 and "is a file; choose another --out" in _one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_full_disk_during_training_is_one_line_and_leaves_no_temporary(
    dataset, tmp_path, monkeypatch, capsys
):
    def full(obj, path, *args, **kw):
        Path(path).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "run"
    code = main(
        [
            "train",
            str(dataset),
            "--out",
            str(out),
            "--preset",
            "quick",
            "--cache",
            str(tmp_path / "c"),
            "--epochs",
            "1",
            "--downsample",
            "1",
            "--quiet",
        ]
    )
    line = _one_line_error(capsys)
    assert code == 2 and "No space left on device" in line and "--resume" in line
    assert not [p.name for p in out.iterdir() if "tmp" in p.name]
    assert not (out / "last.pt").exists() and not (out / PREVIOUS_CHECKPOINT).exists()


def test_save_checkpoint_on_a_full_disk_keeps_the_last_good_one(tmp_path, monkeypatch):
    _checkpoint(tmp_path, 1)
    before = (tmp_path / "last.pt").read_bytes()

    def full(obj, path, *args, **kw):
        Path(path).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match="No space"):
        _checkpoint(tmp_path, 2)
    assert (tmp_path / "last.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


# --------------------------------------------------------------------------------------------------- bad
# cases


@pytest.fixture
def dataset_with_a_bad_case(dataset, tmp_path) -> Path:
    root = Path(shutil.copytree(dataset, tmp_path / "ds"))
    bad = synthetic_case(root, "s9_broken", 9)
    flair = bad / "s9_broken_flair.nii.gz"
    flair.write_bytes(flair.read_bytes()[:300])  # truncated, as a copy interrupted part-way
    return root


def test_unreadable_cases_are_refused_by_name(dataset_with_a_bad_case, tmp_path, capsys):
    code = main(
        [
            "train",
            str(dataset_with_a_bad_case),
            "--out",
            str(tmp_path / "run"),
            "--preset",
            "quick",
            "--cache",
            str(tmp_path / "c"),
            "--downsample",
            "1",
            "--quiet",
        ]
    )
    line = _one_line_error(capsys)
    assert code == 2 and "1 case(s) cannot be used: s9_broken (" in line and "s9_broken_flair.nii.gz" in line
    assert "--skip-bad-cases" in line and not (tmp_path / "run").exists()


def test_skip_bad_cases_trains_on_the_rest_and_records_them(dataset_with_a_bad_case, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                str(dataset_with_a_bad_case),
                "--out",
                str(out),
                "--preset",
                "quick",
                "--epochs",
                "1",
                "--cache",
                str(tmp_path / "c"),
                "--downsample",
                "1",
                "--skip-bad-cases",
                "--quiet",
            ]
        )
        == 0
    )
    assert "training without case s9_broken (--skip-bad-cases)" in capsys.readouterr().err
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert (
        list(config["skipped_cases"]) == ["s9_broken"]
        and "s9_broken_flair" in config["skipped_cases"]["s9_broken"]
    )
    assert sorted(config["train_cases"] + config["val_cases"]) == ["s0", "s1", "s2"]


def test_a_dataset_without_a_sequence_is_refused_unless_the_user_chose_the_others(tmp_path, capsys):
    """Issue 36 (fuzz, missing-02): one case without its FLAIR file trained a three-channel model, exit 0."""
    (synthetic_case(tmp_path / "ds", "s0", 0) / "s0_flair.nii.gz").unlink()
    folders = ["train", str(tmp_path / "ds"), "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c")]
    args = [*folders, "--preset", "quick", "--epochs", "1", "--downsample", "1", "--quiet"]
    assert main(args) == 2
    line = _one_line_error(capsys)
    assert "case s0 has no flair file" in line and "--modalities t1,t1ce,t2" in line
    assert not (tmp_path / "run").exists() and not (tmp_path / "c").exists()
    assert main(args + ["--modalities", "t1,t1ce,t2"]) == 0
    said = capsys.readouterr()
    assert (
        "no case has a flair file; the channels are t1, t1ce, t2, as --modalities chose"
        in said.out + said.err
    )
    config = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert config["modalities"] == ["t1", "t1ce", "t2"]


# ------------------------------------------------------------------------------------------------ the cache


def test_a_prepared_cache_with_other_settings_is_refused(dataset, tmp_path, capsys):
    assert (
        main(["cache", str(dataset), "--out", str(tmp_path / "c"), "--downsample", "2", "--workers", "1"])
        == 0
    )
    code = main(
        [
            "train",
            str(dataset),
            "--out",
            str(tmp_path / "run"),
            "--preset",
            "quick",
            "--downsample",
            "1",
            "--cache",
            str(tmp_path / "c"),
            "--quiet",
        ]
    )
    line = _one_line_error(capsys)
    assert code == 2 and "holds a cache made with other settings (preprocess.downsample 2.0 -> 1.0" in line
    assert "use another --cache folder" in line and not (tmp_path / "run").exists()


def test_cache_with_a_bad_case_prepares_the_rest_and_exits_2_naming_it(
    dataset_with_a_bad_case, tmp_path, capsys
):
    """The exit-code contract (status 1 is a bug, 2 refused input): cache said a failed case on standard
    output and exited 1."""
    code = main(["cache", str(dataset_with_a_bad_case), "--out", str(tmp_path / "c"), "--workers", "1"])
    said = capsys.readouterr()
    errors = [ln for ln in said.err.splitlines() if ln.startswith("medseg3d: error: ")]
    assert (
        code == 2 and len(errors) == 1 and "failed s9_broken: " in errors[0] and "s9_broken" not in said.out
    )
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["cache.json", "s0", "s1", "s2"]


@pytest.mark.slow
def test_a_prepared_cache_is_used_by_train(dataset, tmp_path):
    assert main(["cache", str(dataset), "--out", str(tmp_path / "c"), "--workers", "1"]) == 0
    images = {p: p.stat().st_mtime_ns for p in (tmp_path / "c").glob("*/image.npy")}
    assert len(images) == 3
    assert (
        main(
            [
                "train",
                str(dataset),
                "--out",
                str(tmp_path / "run"),
                "--preset",
                "quick",
                "--downsample",
                "1",
                "--labels",
                "brats",
                "--epochs",
                "1",
                "--cache",
                str(tmp_path / "c"),
                "--quiet",
            ]
        )
        == 0
    )
    assert {p: p.stat().st_mtime_ns for p in images} == images  # read, not prepared again
    assert json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))["cache"] == str(
        tmp_path / "c"
    )


def test_seeded_damage_of_checkpoints_and_settings_never_ends_in_a_traceback(tmp_path, run, capsys):
    """60 seeded damages (truncation, byte flips, zeroed blocks) of last.pt and of config.json: resume either
    goes on (from last.pt only if the damage missed everything it reads: zip padding or unused records;
    flips inside tensor data are caught by the checkpoint's checksum), from previous.pt, or says in one
    line what is damaged; never another exception."""
    rng = np.random.default_rng(21)
    _checkpoint(tmp_path, 1)
    _checkpoint(tmp_path, 2)
    good_last = (tmp_path / "last.pt").read_bytes()
    good_config = (run / "config.json").read_bytes()
    outcomes = {"resumed": 0, "fell back": 0, "refused": 0}

    def damaged(data: bytes) -> bytes:
        data = bytearray(data)
        kind = rng.integers(3)
        if kind == 0:
            return bytes(data[: rng.integers(len(data))])
        if kind == 1:
            for i in rng.integers(0, len(data), rng.integers(1, 20)):
                data[i] ^= 1 << int(rng.integers(8))
            return bytes(data)
        start = int(rng.integers(len(data)))
        stop = min(len(data), start + int(rng.integers(1, 4096)))
        data[start:stop] = bytes(stop - start)  # a block of zeros, as a bad sector reads
        return bytes(data)

    for trial in range(40):
        (tmp_path / "last.pt").write_bytes(damaged(good_last))
        keep_previous = trial % 2 == 0
        if not keep_previous:
            (tmp_path / PREVIOUS_CHECKPOINT).rename(tmp_path / "kept.pt")
        try:
            state = load_resume_state(tmp_path, *_small_training_objects())
            outcomes[
                "fell back" if "resuming from previous.pt" in capsys.readouterr().err else "resumed"
            ] += 1
            assert state["epoch"] in (1, 2)
        except InputError as exc:
            assert "\n" not in str(exc) and "cannot resume, the checkpoint is damaged" in str(exc)
            assert not keep_previous
            outcomes["refused"] += 1
        if not keep_previous:
            (tmp_path / "kept.pt").rename(tmp_path / PREVIOUS_CHECKPOINT)
    settings_outcomes = {"read": 0, "from the model file": 0, "refused": 0}
    for _ in range(20):
        (run / "config.json").write_bytes(damaged(good_config))
        try:
            cfg = resume_config(run, {})
            assert cfg.resume and cfg.out == str(run)
            recovered = "recorded in last.safetensors" in capsys.readouterr().err
            settings_outcomes["from the model file" if recovered else "read"] += 1
        except InputError as exc:
            assert "\n" not in str(exc)
            settings_outcomes["refused"] += 1
    print(f"damaged checkpoints: {outcomes}; damaged settings: {settings_outcomes}")  # shown with pytest -s
    assert outcomes["fell back"] >= 10 and outcomes["refused"] >= 10, outcomes
