"""The experiments' grids as data: runs, budgets, instance norm, the hand task's label check."""

import json

import pytest

from medseg3d.errors import InputError
from medseg3d.experiments import (
    EXPERIMENTS,
    TRAIN_MINUTES,
    default_budget_minutes,
    plan_experiment,
)

from .helpers import make_synthetic_hand_dataset


def test_grid_definitions():
    assert list(EXPERIMENTS) == ["modalities", "ablations", "losses", "depth", "binary", "hand", "task1"]
    assert [r.name for r in EXPERIMENTS["modalities"].runs] == [
        "flair",
        "t1",
        "t1ce",
        "t2",
        "flair+t1ce",
        "flair+t1ce+t2",
        "all",
    ]
    assert EXPERIMENTS["ablations"].convergence
    assert {r.overrides.get("loss") for r in EXPERIMENTS["losses"].runs} == {
        "jaccard",
        "dice",
        "ce",
        "wce",
        "focal",
        "jaccard+ce",
    }
    for exp in EXPERIMENTS.values():
        # the default budget shares TRAIN_MINUTES over the grid: the 6-hour promise rests on it
        assert default_budget_minutes(exp, 5) * len(exp.runs) * 5 <= TRAIN_MINUTES + 1


def test_instance_norm_for_every_network_with_the_option(small_dataset, tmp_path):
    _, tasks, _ = plan_experiment("binary", small_dataset, tmp_path / "binary", folds=2, epochs=1)
    args = {t.run.name: t.overrides["net_args"] for t in tasks}
    assert args["tiny-unet-bce"] == args["tiny-unet-bce-prior"] == {"norm": "instance"}
    assert args["kayalibay-bce"] == args["kayalibay-jaccard"] == {"norm": "instance"}
    from medseg3d.experiments import net_args

    assert net_args("twopath") == {}  # Havaei's nets have no norm option


def test_hand_configuration_rejects_other_label_sets(tmp_path):
    data = make_synthetic_hand_dataset(tmp_path / "synthetic_hand", n_cases=2)
    info = json.loads((data / "dataset.json").read_text(encoding="utf-8"))
    info["labels"] = {"background": 0, "bone": 1}
    (data / "dataset.json").write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(InputError, match="five classes"):
        plan_experiment("hand", data, tmp_path / "out", quick=True)
