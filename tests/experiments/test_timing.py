"""Time estimates from finished trainings."""

import json

from medseg3d.experiments import (
    estimate_from_finished,
    finished_rates,
    plan_experiment,
)


def test_estimate_from_finished_trainings(small_dataset, tmp_path):
    _, tasks, _ = plan_experiment(
        "ablations", small_dataset, tmp_path / "abl", folds=2, epochs=3, runs=["concat-jaccard", "noskip"]
    )
    assert finished_rates(tasks, 1) == ({}, 0.0)  # nothing finished: the runner times an iteration instead
    # fold 0 of both runs finished: 3 epochs of 1 iteration (1 training case per fold) each
    for task, wall in zip(tasks[:2], (30.0, 12.0)):
        task.folder.mkdir(parents=True)
        (task.folder / "timing.json").write_text(
            json.dumps({"train_wall_seconds": wall, "score_wall_seconds": 4.0}), encoding="utf-8"
        )
        task.state = "done"
    rates, score = finished_rates(tasks, 1)
    assert rates == {"concat-jaccard": 10.0, "noskip": 4.0, "": 7.0} and score == 4.0
    # pending: each run's fold 1 at its own pace (30 + 12 s) plus scoring (2 x 4 s)
    assert estimate_from_finished(tasks, rates, score, 1) == 50.0
    tasks[2].state = "score"  # trained, only scoring left
    assert estimate_from_finished(tasks, rates, score, 1) == 4.0 + 12.0 + 4.0


def test_an_epoch_passes_over_the_training_cases_once_in_batches():
    from medseg3d.experiments.timing import iterations_per_epoch

    assert iterations_per_epoch({}, 20) == 20  # the paper's set-up: one case per iteration
    assert iterations_per_epoch({"batch": 2}, 139) == 70  # as the training loop counts: ceil(139 / 2)
    assert iterations_per_epoch({"batch": 2, "accumulate": 2}, 8) == 2
    assert iterations_per_epoch({"batch": 2, "iters_per_epoch": 16}, 139) == 16  # a run's own count wins
