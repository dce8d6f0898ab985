"""Beyond one process: DDP training under torchrun (2 CPU processes, gloo) equals one process with gradient
accumulation; dataset prediction split into shards by 2 processes; CUDA paths (skipped without a GPU)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SMALL_CASES as CASES  # the cases of the `small_dataset` fixture

from medseg3d.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
# patches and augmentation on, so that the shared sampling stream and per-sample augmentation seeds matter
SETTINGS = {"epochs": 1, "iters_per_epoch": 3, "patch": (32, 32, 32), "augment": "default", "seed": 5}


@pytest.fixture(scope="module")
def dataset(small_dataset):
    return small_dataset


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MEDSEG3D_DEBUG_DUMP")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env | extra


def _run(cmd: list[str], env: dict, timeout: float = 240) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def runs(dataset, tmp_path_factory):
    """The same 3 steps twice: 2 processes x batch 1, and 1 process x batch 1 x accumulate 2."""
    tmp = tmp_path_factory.mktemp("ddp")
    cache = tmp / "cache"
    # one process, gradient accumulation over 2 micro-batches (also prepares the shared cache)
    os.environ["MEDSEG3D_DEBUG_DUMP"] = str(tmp / "dump1")
    try:
        train(TrainConfig.from_preset("quick", dataset=str(dataset), out=str(tmp / "single"), cache=str(cache),
                                      accumulate=2, progress=False, **SETTINGS))
    finally:
        del os.environ["MEDSEG3D_DEBUG_DUMP"]
    # two processes under torchrun, gloo on the CPU
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "medseg3d.cli", "train", str(dataset), "--out", str(tmp / "ddp"), "--preset", "quick",
           "--cache", str(cache), "--epochs", "1", "--iters-per-epoch", "3", "--patch", "32,32,32",
           "--augment", "default", "--seed", "5", "--quiet"]
    _run(cmd, _env(MEDSEG3D_DEBUG_DUMP=str(tmp / "dump2")))
    return tmp


def _weights(path: Path) -> tuple[dict, dict, list[float]]:
    dump = torch.load(path, weights_only=True)
    params = {k: v for k, v in dump["state"].items() if not k.endswith(BUFFERS)}
    buffers = {k: v for k, v in dump["state"].items() if k.endswith(BUFFERS)}
    return params, buffers, dump["losses"]


def test_ranks_hold_identical_weights(runs):
    p0, _, losses0 = _weights(runs / "dump2" / "rank0.pt")
    p1, _, losses1 = _weights(runs / "dump2" / "rank1.pt")
    assert p0.keys() == p1.keys() and len(p0) > 10
    for key in p0:
        assert torch.equal(p0[key], p1[key]), key
    assert losses0 == losses1  # the logged loss is the mean over both processes, the same on each


def test_two_processes_equal_one_with_accumulation(runs):
    single, single_buffers, single_losses = _weights(runs / "dump1" / "rank0.pt")
    ddp, ddp_buffers, ddp_losses = _weights(runs / "dump2" / "rank0.pt")
    assert single.keys() == ddp.keys()
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-4, atol=2e-5, msg=key)
    assert ddp_losses == pytest.approx(single_losses, rel=1e-5)
    # three real Adam steps were taken (the comparison is not of two untouched initialisations)
    ckpt = torch.load(runs / "ddp" / "last.pt", weights_only=True)
    state = next(iter(ckpt["optimizer"]["state"].values()))
    assert float(state["step"]) == 3 and float(state["exp_avg"].abs().max()) > 0
    # BatchNorm running statistics are buffers, not weights: rank 0's follow only its own micro-batches
    assert single_buffers.keys() == ddp_buffers.keys()


def test_only_rank_zero_writes(runs):
    run = runs / "ddp"
    for name in ("config.json", "last.pt", "model.safetensors", "log.csv", "split.json"):
        assert (run / name).is_file(), name
    assert not list(run.glob("*.tmp*"))
    with open(run / "log.csv") as a, open(runs / "single" / "log.csv") as b:
        rows, single = list(csv.DictReader(a)), list(csv.DictReader(b))
    assert len(rows) == 1 and float(rows[0]["train_loss"]) == pytest.approx(float(single[0]["train_loss"]), rel=1e-4)
    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == 2 and config["global_batch"] == 2


def test_predict_shards_in_two_processes(runs, dataset, tmp_path):
    model = runs / "ddp"
    out = tmp_path / "preds"
    base = [sys.executable, "-m", "medseg3d.cli", "predict", str(model), str(dataset), "-o", str(out), "--quiet"]
    env = _env()
    procs = [subprocess.Popen(base + ["--shard", f"{i}/2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    written = [{line.split()[-1] for line in stdout.splitlines() if line.startswith("wrote")} for stdout, _ in outputs]
    assert written[0] and written[1] and not written[0] & written[1]
    assert {Path(p).name for p in written[0] | written[1]} == {f"{c}.nii.gz" for c in CASES}
    # a later run over the whole dataset (here as torchrun's rank 1 of 2) finds its cases written and skips them
    again = _run(base, _env(RANK="1", WORLD_SIZE="2"))
    assert "wrote" not in again.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{c}.nii.gz" for c in CASES)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_uses_amp_and_channels_last(runs):
    from medseg3d.inference import predict_probabilities
    from medseg3d.predict import load_model

    loaded = load_model(runs / "ddp", device="auto")
    assert loaded.device.type == "cuda"
    x = torch.randn(4, 40, 48, 32).numpy()
    probs = predict_probabilities(loaded.model, x, device=loaded.device)
    assert probs.dtype == torch.float32 and probs.device.type == "cpu"
    weight = next(p for p in loaded.model.parameters() if p.ndim == 5)
    assert weight.is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_two_gpu_nccl_training(dataset, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "medseg3d.cli", "train", str(dataset), "--out", str(tmp_path / "gpu"), "--preset", "quick",
           "--cache", str(tmp_path / "cache"), "--epochs", "1", "--iters-per-epoch", "3", "--quiet"]
    _run(cmd, _env(MEDSEG3D_DEBUG_DUMP=str(tmp_path / "dump")))
    p0, _, _ = _weights(tmp_path / "dump" / "rank0.pt")
    p1, _, _ = _weights(tmp_path / "dump" / "rank1.pt")
    for key in p0:
        assert torch.equal(p0[key], p1[key]), key
