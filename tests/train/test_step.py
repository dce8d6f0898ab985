"""The one training step: the loop, the experiments' timing and the benchmarks run the same function, and
two steps taken by hand from a fixed seed give exactly the loop's first two iterations."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from medseg3d.augment import build_augment
from medseg3d.errors import InputError
from medseg3d.labels import get_scheme
from medseg3d.losses import build_loss
from medseg3d.nets import build_network
from medseg3d.sampling import PatchSampler
from medseg3d.train import TrainConfig, train
from medseg3d.train import loop as train_loop
from medseg3d.train import step as train_step
from medseg3d.train.data import load_training_data, micro_batch, plan_global_batch
from medseg3d.train.step import make_grad_scaler, training_step

from .dumps import recorder
from .synthetic import synthetic_case


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("step") / "ds"
    for k in range(3):
        synthetic_case(root, f"s{k}", k)
    return root


def test_the_loop_and_the_timing_call_the_one_step(dataset, monkeypatch):
    from medseg3d.experiments import timing
    from medseg3d.io import read_volume

    assert train_loop.training_step is train_step.training_step
    calls = []
    real = train_step.training_step

    def spy(*args, **kwargs):
        calls.append(kwargs.get("precision"))
        return real(*args, **kwargs)

    monkeypatch.setattr(train_step, "training_step", spy)  # the timing imports it from here when it runs
    flair = dataset / "s0" / "s0_flair.nii.gz"
    case = types.SimpleNamespace(modalities=("flair",), channels={"flair": flair})
    cfg = TrainConfig.from_preset("quick", modalities=("flair",), patch=(16, 16, 16), precision="fp32")
    t_iter, t_forward = timing.measure_iteration(cfg, {"s0": case})
    assert calls == ["fp32"] * 4  # one warm-up step, then the three that are timed
    assert t_iter > 0 and t_forward > 0
    assert read_volume(flair).array.shape[:3] == (30, 28, 26)


def test_two_steps_by_hand_give_the_loops_first_two_iterations(dataset, tmp_path):
    # two epochs of one iteration each, so the loop logs each step's loss; validation does not touch weights
    cfg = TrainConfig.from_preset(
        "quick",
        dataset=str(dataset),
        out=str(tmp_path / "run"),
        cache=str(tmp_path / "cache"),
        epochs=2,
        iters_per_epoch=1,
        downsample=1.0,
        patch=(16, 16, 16),
        augment="default",
        progress=False,
        seed=4,
    )
    train(cfg, **recorder(tmp_path / "dump"))
    dumped = torch.load(tmp_path / "dump" / "rank0.pt")

    scheme = get_scheme(cfg.labels)
    data = load_training_data(cfg, tmp_path / "run", scheme, None)  # the run's cache and split
    torch.manual_seed(cfg.seed)
    model = build_network(cfg.net, len(data.modalities), scheme.n_outputs, **cfg.net_args)
    loss_fn = build_loss(cfg.loss, n_classes=scheme.n_outputs)
    sampler = PatchSampler(cfg.patch, cfg.foreground_p, model.size_multiple or 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = make_grad_scaler(cfg.precision, "cpu")
    augment = build_augment(cfg.augment)
    np_rng, aug_gen = np.random.default_rng(cfg.seed * 1000), torch.Generator().manual_seed(cfg.seed * 1000)
    losses = []
    model.train()
    for iteration in range(2):
        plan = plan_global_batch(data.train_cases, sampler, np_rng, aug_gen, 1)
        x, y = micro_batch(plan, data.train_cases, sampler, augment, torch.device("cpu"))
        losses.append(training_step(model, loss_fn, optimizer, scaler, [(x, y)], iteration=iteration))
    assert losses == dumped["losses"]  # the same floats: the same samples, augmentation and arithmetic
    assert losses[0] != losses[1]  # the first step changed the weights
    state = model.state_dict()
    assert set(state) == set(dumped["state"])
    for name, value in state.items():
        assert torch.equal(value, dumped["state"][name]), name


def test_accumulation_averages_the_micro_batch_gradients():
    # two micro-batches with accumulate=2 take the step of their mean loss: plain SGD makes it exact
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    twin = torch.nn.Linear(3, 1)
    twin.load_state_dict(net.state_dict())
    x1, x2 = torch.randn(2, 3), torch.randn(2, 3)
    t1, t2 = torch.randn(2, 1), torch.randn(2, 1)
    mse = torch.nn.functional.mse_loss
    loss = training_step(
        net,
        mse,
        torch.optim.SGD(net.parameters(), lr=0.1),
        make_grad_scaler("fp32", "cpu"),
        [(x1, t1), (x2, t2)],
        accumulate=2,
    )
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.1)
    mean_loss = (mse(twin(x1), t1) + mse(twin(x2), t2)) / 2
    mean_loss.backward()
    optimizer.step()
    assert loss == pytest.approx(mean_loss.item(), rel=1e-6)  # float32 sums in another order
    for a, b in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_a_loss_that_is_not_finite_stops_before_the_weights_change():
    net = torch.nn.Linear(3, 1)
    before = {k: v.clone() for k, v in net.state_dict().items()}

    def nan_loss(out, target):
        return out.sum() * float("nan")

    with pytest.raises(InputError, match="the loss became nan at iteration 7; lower --lr"):
        training_step(
            net,
            nan_loss,
            torch.optim.SGD(net.parameters(), lr=0.1),
            make_grad_scaler("fp32", "cpu"),
            [(torch.randn(2, 3), None)],
            iteration=7,
        )
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
