"""End-to-end: train a few iterations on shared cases, predict, evaluate; resume equals uninterrupted."""

import csv
import json

import numpy as np
import pytest
import torch
from conftest import SMALL_CASES as CASES  # the cases of the `small_dataset` fixture

from medseg3d.checkpoint import read_model_file
from medseg3d.errors import InputError, ModelError
from medseg3d.evaluate import evaluate
from medseg3d.io import read_volume
from medseg3d.models import load_model
from medseg3d.predict import predict, segment
from medseg3d.train import TrainConfig, train


def quick_config(dataset, out, cache, **kw):
    base = dict(
        dataset=str(dataset),
        out=str(out),
        cache=str(cache),
        epochs=2,
        progress=False,
        seed=3,
        augment="default",
    )
    base.update(kw)
    return TrainConfig.from_preset("quick", **base)


@pytest.fixture(scope="module")
def trained_run(small_dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    summary = train(quick_config(small_dataset, tmp / "run", tmp / "cache"))
    return tmp / "run", tmp / "cache", summary


def test_training_writes_everything(trained_run):
    run, _, summary = trained_run
    for name in ("config.json", "log.csv", "curves.png", "last.pt", "model.safetensors", "split.json"):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert len(rows) == 2 and {"epoch", "train_loss", "dice_WT", "dice_TC", "dice_ET", "seconds"} <= set(
        rows[0]
    )
    assert all(np.isfinite(float(r["train_loss"])) for r in rows)
    assert 0.0 <= float(rows[-1]["dice_WT"]) <= 1.0
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert config["software"]["torch"] == torch.__version__ and config["net"] == "kayalibay"
    assert config["software"]["threads"] == torch.get_num_threads()
    meta, _ = read_model_file(run / "model.safetensors")
    assert meta["modalities"] == ["flair", "t1", "t1ce", "t2"] and meta["labels"]["values"] == [0, 1, 2, 4]
    assert summary["iterations"] == 2 * config["iters_per_epoch"]


@pytest.mark.slow  # trains, predicts every case and scores them: 25 s idle
def test_predict_and_evaluate(trained_run, small_dataset, brats_root, tmp_path):
    run, _, _ = trained_run
    case = brats_root / CASES[0]
    out = tmp_path / "pred.nii.gz"
    predict(run, [case], out, progress=False)
    pred, ref = read_volume(out), read_volume(case / f"{CASES[0]}_flair.nii.gz")
    assert pred.shape == ref.shape and np.allclose(pred.affine, ref.affine)
    assert set(np.unique(pred.array)) <= {0, 1, 2, 4}
    assert pred.meta["nifti_header"]["sform_code"] == ref.meta["nifti_header"]["sform_code"]
    with pytest.raises(InputError, match="exists already"):
        predict(run, [case], out, progress=False)

    folder = tmp_path / "preds"
    written = predict(run, [small_dataset], folder, progress=False)
    assert len(written) == 3
    rows, summary = evaluate(folder, small_dataset, "brats", progress=False)
    assert len(rows) == 3 and "dice_WT" in summary
    table = list(csv.DictReader((folder / "metrics.csv").open()))
    for col in ("case", "dice_WT", "dice_TC", "dice_ET", "hd95_WT", "sens_WT", "spec_WT", "jaccard_ET"):
        assert col in table[0]
    for r in table:
        assert 0.0 <= float(r["dice_WT"]) <= 1.0 and 0.0 <= float(r["spec_WT"]) <= 1.0


def test_segment_api_and_shards(trained_run, small_dataset, brats_root, tmp_path):
    run, _, _ = trained_run
    vol = segment(str(run), brats_root / CASES[1])
    assert vol.shape == (240, 240, 155)
    # two shards together cover the dataset once; a second pass skips existing outputs
    a = predict(run, [small_dataset], tmp_path / "p", shard=(0, 2), progress=False)
    b = predict(run, [small_dataset], tmp_path / "p", shard=(1, 2), progress=False)
    assert len(a) + len(b) == 3 and not set(a) & set(b)
    assert predict(run, [small_dataset], tmp_path / "p", progress=False) == []


# two trainings of the same run, one interrupted: 10 s idle (tests/train/test_resume covers resuming by
# default)
@pytest.mark.slow
def test_resume_equals_uninterrupted(small_dataset, tmp_path):
    full = train(quick_config(small_dataset, tmp_path / "full", tmp_path / "cache", epochs=2))
    train(quick_config(small_dataset, tmp_path / "part", tmp_path / "cache", epochs=1))
    resumed = train(quick_config(small_dataset, tmp_path / "part", tmp_path / "cache", epochs=2, resume=True))
    assert resumed["iterations"] == full["iterations"]
    _, a = read_model_file(tmp_path / "full" / "last.safetensors")
    _, b = read_model_file(tmp_path / "part" / "last.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_existing_run_needs_resume(trained_run):
    run, cache, _ = trained_run
    with pytest.raises(InputError, match="--resume"):
        train(quick_config(run.parent, run, cache))


def test_model_channel_mismatch(trained_run, brats_root, tmp_path):
    run, _, _ = trained_run
    case = brats_root / CASES[0]
    with pytest.raises(InputError, match="needs 4 channel files"):
        predict(run, [case / f"{CASES[0]}_flair.nii.gz"], tmp_path / "x.nii.gz", progress=False)
    assert not (tmp_path / "x.nii.gz").exists()


def test_bad_model_file(tmp_path):
    bad = tmp_path / "m.safetensors"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError):
        load_model(bad)
    with pytest.raises(ModelError, match="no such model"):
        load_model(tmp_path / "missing")


def test_presets_budget_and_network_arguments_merge():
    cfg = TrainConfig.from_preset("brats")
    assert cfg.net_args == {"norm": "instance"} and cfg.labels == "regions"
    assert cfg.minutes <= 120 and cfg.epochs * cfg.iters_per_epoch == 8000  # the 2-hour CPU budget
    wider = TrainConfig.from_preset("brats", net_args={"base_channels": 16})
    assert wider.net_args == {"norm": "instance", "base_channels": 16}
    assert TrainConfig.from_preset("brats-v0").net_args == {}


@pytest.mark.slow  # slow: keeps the default suite near 5 minutes; run with -m slow
def test_output_prior_starts_at_the_training_foreground(small_dataset, tmp_path):
    cfg = quick_config(
        small_dataset,
        tmp_path / "run",
        tmp_path / "cache",
        net="tiny-unet",
        labels="binary-regions",
        loss="bce",
        epochs=1,
        output_prior=True,
        augment="none",
    )
    train(cfg)
    saved = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    (fraction,) = saved["output_prior_fractions"]
    # whole crops (no --patch), zero-padded to multiples of 8 as training sees them: the tumour share
    tumour = total = 0
    for case in saved["train_cases"]:
        label = np.load(tmp_path / "cache" / case / "label.npy")
        tumour += int((label > 0).sum())
        total += int(np.prod([-(-n // 8) * 8 for n in label.shape]))
    assert fraction == pytest.approx(tumour / total, rel=1e-4)
    assert 0.0 < fraction < 0.5
    # resumed for a second epoch: the biases come from the checkpoint, the record of the first start stays
    train(
        quick_config(
            small_dataset,
            tmp_path / "run",
            tmp_path / "cache",
            net="tiny-unet",
            labels="binary-regions",
            loss="bce",
            epochs=2,
            output_prior=True,
            augment="none",
            resume=True,
        )
    )
    assert json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))[
        "output_prior_fractions"
    ] == [fraction]
    # the paper's network has bias-free output maps: refused in one line before any training
    with pytest.raises(InputError, match="without --output-prior"):
        train(
            quick_config(
                small_dataset,
                tmp_path / "paper",
                tmp_path / "cache",
                labels="binary-regions",
                loss="bce",
                epochs=1,
                output_prior=True,
            )
        )
    assert not (tmp_path / "paper").exists()
