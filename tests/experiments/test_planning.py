import json

import numpy as np
import pytest

from medseg3d.cli import main
from medseg3d.errors import InputError
from medseg3d.experiments.planning import (
    MIN_EDGE,
    PATCH_VOXELS,
    fit_patch,
    levels_for,
    plan_dataset,
    target_spacing,
)
from medseg3d.preprocess import PrepConfig, preprocess
from medseg3d.train import TrainConfig

from .crossval.helpers import make_tiny_dataset


def test_target_spacing_median_and_anisotropic_rule():
    iso = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.2], [0.8, 1.0, 1.0]])
    assert target_spacing(iso)[0] == (1.0, 1.0, 1.0)
    # thick slices on axis 2: median 5 mm > 3 x 0.8; the 10th percentile of axis 2 instead
    thick = np.array([[0.8, 0.8, 5.0], [0.8, 0.8, 5.0], [0.8, 0.8, 3.0], [0.8, 0.8, 6.0]])
    spacing, why = target_spacing(thick)
    assert spacing[:2] == (0.8, 0.8)
    assert spacing[2] == pytest.approx(np.percentile(thick[:, 2], 10))
    assert "10th percentile" in why


def test_levels_and_patch_fit_the_budget_and_the_size_multiple():
    assert levels_for((40, 56, 40)) == 4  # 40 / 8 = 5 >= 4, 40 / 16 < 4
    assert levels_for((16, 16, 16)) == 3
    patch, levels = fit_patch((35.2, 49.0, 36.0))
    assert patch == (40, 56, 40) and levels == 4
    patch, levels = fit_patch((70, 86, 70))
    multiple = 2 ** (levels - 1)
    assert np.prod(patch) <= PATCH_VOXELS and all(p % multiple == 0 for p in patch)
    assert min(patch) / multiple >= MIN_EDGE


def test_plan_of_an_mri_dataset_is_whole_case_patches_zscore_and_its_own_labels(tmp_path):
    root = make_tiny_dataset(tmp_path / "d", spacing=(1.5, 1.5, 1.5))
    plan = plan_dataset(root)
    s = plan.settings
    assert s["spacing"] == [1.5, 1.5, 1.5]
    assert s["labels"] == "dataset" and s["loss"] == "dice+ce" and s["normalize"] == "zscore"
    assert s["batch"] == min(8, PATCH_VOXELS // int(np.prod(s["patch"])))
    # the settings are a valid training configuration
    cfg = TrainConfig.from_preset(None, dataset=str(root), out=str(tmp_path / "run"), **s)
    assert cfg.prep_config().normalize == "zscore"
    assert any("1 front, 2 back" in r for r in plan.reasons)


def test_plan_of_a_ct_dataset_windows_every_case_alike(tmp_path):
    root = make_tiny_dataset(tmp_path / "ct", modality="CT", offset=-1000)
    s = plan_dataset(root).settings
    low, high, mean, std = s["window"]
    # the labelled voxels are offset + 100 (+ 20) + noise: the window lies around them, not around the air
    assert -920 < low < high < -840 and low < mean < high and std > 0
    config = PrepConfig(normalize="window", window=tuple(s["window"]))
    image = np.full((1, 4, 4, 4), -2000.0)
    x, _, _ = preprocess(image, np.eye(4), PrepConfig(crop="none", normalize="window", window=config.window))
    assert np.allclose(x, (low - mean) / std, atol=1e-5)  # clipped at the window's low end


def test_window_setting_is_checked():
    with pytest.raises(InputError, match="window"):
        PrepConfig(normalize="window")


def test_plan_of_the_brats_layout_trains_regions(brats_root):
    plan = plan_dataset(brats_root, max_measured=2)
    assert plan.settings["labels"] == "regions" and plan.settings["loss"] == "region-dice-bce"
    assert plan.settings["spacing"] == [2.0, 2.0, 2.0]  # 1 mm brains are coarsened once
    assert np.prod(plan.settings["patch"]) <= PATCH_VOXELS


def test_plan_of_the_hippocampus_is_whole_case_patches_of_its_two_classes(data_root):
    root = data_root / "msd_hippocampus"
    if not root.is_dir():
        pytest.skip("no msd_hippocampus in the shared data")
    s = plan_dataset(root, max_measured=12).settings
    # crops of about 31-43 x 40-59 x 24-47 voxels at 1 mm: one patch holds a case, two fit the budget
    assert s["spacing"] == [1.0, 1.0, 1.0] and s["batch"] >= 2
    assert all(p % 2 ** (s["net_args"]["levels"] - 1) == 0 for p in s["patch"])
    assert 32 <= s["patch"][0] <= 48 and 40 <= s["patch"][1] <= 64 and 32 <= s["patch"][2] <= 48
    assert s["labels"] == "dataset" and s["normalize"] == "zscore"


def test_plan_command_prints_the_reasons_and_writes_json(tmp_path, capsys):
    root = make_tiny_dataset(tmp_path / "d")
    assert main(["plan", str(root), "--json", str(tmp_path / "plan.json")]) == 0
    out = capsys.readouterr().out
    assert "spacing 1 x 1 x 1 mm" in out and "normalisation: z-score" in out
    assert json.loads((tmp_path / "plan.json").read_text())["settings"]["labels"] == "dataset"


def test_plan_command_refuses_a_folder_without_cases(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["plan", str(tmp_path / "empty")]) == 2
    assert "medseg3d: error:" in capsys.readouterr().err


def test_task1_experiment_takes_the_dataset_plan(tmp_path, capsys):
    """`medseg3d experiment task1 DATA --plan`: the paper's Task 1 runs with the dataset's planned
    settings."""
    from medseg3d.experiments import plan_experiment

    root = make_tiny_dataset(tmp_path / "d", n_cases=4)
    _, tasks, _ = plan_experiment("task1", root, tmp_path / "exp", folds=2, epochs=1, write=False)
    assert {t.run.name for t in tasks} == {"concat-jaccard", "concat-ce", "noskip", "single-map", "sum"}
    planned = plan_dataset(root).settings
    for task in tasks:
        assert task.overrides["labels"] == "dataset" and list(task.overrides["patch"]) == planned["patch"]
        assert task.overrides["net_args"]["levels"] == planned["net_args"]["levels"]
    assert {t.overrides["loss"] for t in tasks} == {"jaccard", "ce"}
    assert not (tmp_path / "exp").exists()


def test_task1_runs_and_reports_with_the_datasets_own_classes(tmp_path):
    """A task1 run trains with labels "dataset" (dataset.json's classes): its table must name them (the
    report once asked for a built-in scheme called "dataset" and stopped)."""
    root = make_tiny_dataset(tmp_path / "d", n_cases=4)
    out = tmp_path / "exp"
    args = ["experiment", "task1", str(root), "--out", str(out), "--folds", "2", "--epochs", "1"]
    assert main(args + ["--runs", "concat-jaccard", "--quiet"]) == 0
    table = (out / "table.md").read_text()
    assert "front" in table and "back" in table and "concat-jaccard" in table
