"""Reusing finished runs of other experiment folders: only identical trainings, copied and reported."""

import json

import pytest

from medseg3d import experiments
from medseg3d.cli import main
from medseg3d.errors import InputError
from medseg3d.experiments import (
    plan_experiment,
    run_experiment,
)

from .helpers import read_table


def _fake_finished_run(task, split, modalities, **changes):
    """Write what a finished training of ``task`` leaves behind (config.json, metrics.csv), with changes."""
    from medseg3d.datasets import fold_ids

    train_ids, val_ids = fold_ids(split, task.fold)
    config = experiments.train_config(task.overrides).to_dict()
    config |= {
        "modalities": modalities,
        "train_cases": train_ids,
        "val_cases": val_ids,
        "world_size": 1,
        "iters_per_epoch": len(train_ids),
    }
    config.pop("compile")  # as written before the setting existed: read as its default
    task.folder.mkdir(parents=True)
    (task.folder / "config.json").write_text(json.dumps(config | changes), encoding="utf-8")
    (task.folder / "metrics.csv").write_text("case,dice_WT\nx,0.5\n", encoding="utf-8")


def test_reuse_matches_only_identical_trainings(small_dataset, tmp_path):
    from medseg3d.datasets import find_cases, load_split

    modalities = list(find_cases(small_dataset, require_label=True)[0].modalities)
    _, source_tasks, _ = plan_experiment(
        "ablations", small_dataset, tmp_path / "abl", folds=3, epochs=2, runs=["concat-jaccard", "concat-ce"]
    )
    split = load_split(tmp_path / "abl" / "split.json")
    for task in source_tasks:
        changes = {"precision": "fp32"} if task.run.name == "concat-ce" and task.fold == 2 else {}
        if task.run.name == "concat-jaccard" and task.fold == 1:
            changes = {"val_cases": ["other"]}  # another fold's cases
        _fake_finished_run(task, split, modalities, **changes)
    _, tasks, record = plan_experiment("losses", small_dataset, tmp_path / "losses", folds=3, epochs=2)
    found = experiments.find_reusable(tasks, [tmp_path / "abl"], record, split, modalities)
    pairs = sorted((tasks[i].run.name, tasks[i].fold, f.parent.name, f.name) for i, f in found.items())
    assert pairs == [
        ("ce", 0, "concat-ce", "fold0"),
        ("ce", 1, "concat-ce", "fold1"),
        ("jaccard", 0, "concat-jaccard", "fold0"),
        ("jaccard", 2, "concat-jaccard", "fold2"),
    ]
    # another budget: nothing matches
    _, other, record3 = plan_experiment("losses", small_dataset, tmp_path / "l3", folds=3, epochs=3)
    assert experiments.find_reusable(other, [tmp_path / "abl"], record3, split, modalities) == {}
    # quick runs never reuse; a folder that is not an experiment is refused in one line
    assert (
        experiments.find_reusable(tasks, [tmp_path / "abl"], record | {"quick": True}, split, modalities)
        == {}
    )
    with pytest.raises(InputError, match="not an experiment folder"):
        experiments.find_reusable(tasks, [tmp_path], record, split, modalities)


@pytest.mark.slow  # trains six quick runs: about a minute idle, several under load
def test_reused_runs_are_copied_and_reported(small_dataset, tmp_path, capsys):
    """End to end: a run trained in one experiment is copied into another, not trained again."""
    source = tmp_path / "abl"
    run_experiment(
        "ablations",
        small_dataset,
        source,
        folds=3,
        epochs=1,
        runs=["concat-jaccard"],
        progress=False,
        report=False,
    )
    # --plan: what would be copied and trained, and nothing written
    plan = run_experiment(
        "losses",
        small_dataset,
        tmp_path / "losses",
        folds=3,
        epochs=1,
        runs=["jaccard", "dice"],
        reuse=[source],
        plan=True,
    )
    assert (plan["to_copy"], plan["to_train"], plan["ran"]) == (3, 3, 0)
    assert not (tmp_path / "losses").exists()
    printed = capsys.readouterr().out
    assert "jaccard  0     3        0" in printed and "dice     0     0        3" in printed
    assert "estimated time" in printed and "nothing was trained or written" in printed
    summary = run_experiment(
        "losses", small_dataset, tmp_path / "losses", folds=3, epochs=1, runs=["jaccard"], reuse=[source]
    )
    assert summary["ran"] == 0 and summary["reused"] == 3
    assert "reused: 3 training(s)" in capsys.readouterr().out
    for k in range(3):
        copy, original = tmp_path / "losses" / "jaccard" / f"fold{k}", source / "concat-jaccard" / f"fold{k}"
        assert (copy / "metrics.csv").read_text(encoding="utf-8") == (original / "metrics.csv").read_text(
            encoding="utf-8"
        )
        assert json.loads((copy / "reused.json").read_text(encoding="utf-8"))["source"] == str(
            original.resolve()
        )
        assert not (copy / "model.safetensors").exists()
    table = (tmp_path / "losses" / "table.md").read_text(encoding="utf-8")
    assert "reused, not trained again: `jaccard` folds 0, 1, 2 from `abl/concat-jaccard`" in table
    assert "not counting the 3 copied with `--reuse`" in table
    rows = {r["run"]: r for r in read_table(tmp_path / "losses" / "table.csv")}
    assert rows["jaccard"]["folds_done"] == "3"
    capsys.readouterr()
    args = ["experiment", "losses", str(small_dataset), "--folds", "3", "--epochs", "1", "--runs", "dice"]
    assert main(args + ["--out", str(tmp_path / "l2"), "--reuse", str(tmp_path / "missing")]) == 2
    assert "no such experiment folder; check --reuse" in capsys.readouterr().err
    again = [
        "experiment",
        "ablations",
        str(small_dataset),
        "--folds",
        "3",
        "--epochs",
        "1",
        "--runs",
        "concat-jaccard",
    ]
    assert main(again + ["--out", str(source), "--reuse", str(source)]) == 2
    assert "is the experiment folder itself" in capsys.readouterr().err
