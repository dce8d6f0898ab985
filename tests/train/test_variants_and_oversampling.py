"""Synthetic non-enhancing variants train only beside their parent case (never validated on, never leaking a
held-out case into training); ``oversample`` draws a case k times as often; the v3 presets carry both."""

from __future__ import annotations

import pytest

from medseg3d.datasets import find_cases
from medseg3d.datasets.synthetic import write_nonenhancing_variant
from medseg3d.labels import get_scheme
from medseg3d.train import PRESETS, TrainConfig
from medseg3d.train.data import load_training_data

from .synthetic import synthetic_case


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants") / "ds"
    for k in range(3):
        synthetic_case(root, f"s{k}", k)
    for case in find_cases(root):
        write_nonenhancing_variant(case, root, sigma_mm=0)  # the variants' case folders beside the originals
    return root


def _data(dataset, tmp_path, **settings):
    # one cache for the module's tests (prepared once, then reused): the split and sampling are what is tested
    cfg = TrainConfig.from_preset(
        "quick",
        dataset=str(dataset),
        out=str(tmp_path / "run"),
        cache=str(dataset.parent / "cache"),
        progress=False,
        **settings,
    )
    return load_training_data(cfg, tmp_path / "run", get_scheme(cfg.labels), None)


def test_variants_train_with_their_parent_and_are_never_validated(dataset, tmp_path):
    data = _data(dataset, tmp_path, fold=1, folds=3)
    fold = data.split["folds"][1]
    every = [c for f in data.split["folds"] for c in f["val"]]
    assert sorted(every) == [f"s{k}" for k in range(3)]  # the split is of the originals only
    (held,) = data.val_ids
    assert held == fold["val"][0] and not held.endswith("_nonenh")
    trained = set(data.train_ids)
    assert held + "_nonenh" not in trained  # the held-out case's variant does not train either
    assert {c + "_nonenh" for c in fold["train"]} <= trained and len(data.train_ids) == 4


def test_all_cases_trains_on_the_variants_too(dataset, tmp_path):
    assert len(_data(dataset, tmp_path, all_cases=True).train_ids) == 6


def test_oversampling_repeats_a_case_and_ignores_absent_ids(dataset, tmp_path):
    plain = _data(dataset, tmp_path, all_cases=True)
    more = _data(dataset, tmp_path, all_cases=True, oversample={"s0": 3, "not-here": 5})
    assert len(more.train_cases) == len(plain.train_cases) + 2
    assert len(more.train_ids) == len(plain.train_ids)  # the ids (recorded in the model) stay unique


def test_v3_presets_oversample_the_low_grade_cases_without_a_time_budget():
    for name in ("brats-v3", "brats-v3-strong"):
        cfg = TrainConfig.from_preset(name)
        assert cfg.minutes is None and cfg.epochs * cfg.iters_per_epoch == 8000
        assert cfg.oversample == {
            "Brats18_TCIA10_628_1": 3,
            "Brats18_TCIA10_637_1": 3,
            "Brats18_TCIA13_623_1": 3,
        }
    assert PRESETS["brats-v3-strong"]["augment"] == "strong" and PRESETS["brats-v3"]["augment"] == "default"
