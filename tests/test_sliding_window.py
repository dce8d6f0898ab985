"""Sliding-window inference without importing MONAI: the same windows, weights and blend as MONAI's
``sliding_window_inference(..., mode="gaussian")``, bit for bit."""

import pytest
import torch

from medseg3d.inference import gaussian_weights, sliding_window, window_starts


def test_window_starts_cover_the_axis_and_end_at_the_border():
    assert window_starts(64, 64, 0.5) == [0]
    assert window_starts(72, 64, 0.5) == [0, 8]  # the second window is moved back to end at 72
    assert window_starts(130, 64, 0.5) == [0, 32, 64, 66]
    assert window_starts(100, 32, 0.25) == [0, 24, 48, 68]
    assert window_starts(10, 4, 0.99) == list(range(7))  # the step never falls below one voxel


def test_gaussian_weights_are_separable_peaked_and_floored():
    w = gaussian_weights((16, 12, 8))
    assert w.shape == (16, 12, 8) and w.dtype == torch.float32
    assert float(w.max()) == pytest.approx(float(w[7:9, 5:7, 3:5].max())) and float(w.min()) >= 1e-3
    assert torch.allclose(w[:, 6, 4] / w[8, 6, 4], w[:, 5, 3] / w[8, 5, 3])  # the same profile on every line


@pytest.mark.parametrize("batch", [1, 2, 3])
@pytest.mark.parametrize("shape", [(24, 30, 20), (10, 40, 17), (16, 16, 16), (33, 16, 25)])
def test_the_blend_equals_monai_bit_for_bit(shape, batch):
    monai = pytest.importorskip("monai.inferers")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv3d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 3, 3, padding=1)
    ).eval()
    x = torch.randn(1, 2, *shape)
    with torch.no_grad():
        ours = sliding_window(net, x, (16, 16, 16), 0.5, batch=batch)
        theirs = monai.sliding_window_inference(x, (16, 16, 16), batch, net, overlap=0.5, mode="gaussian")
    assert ours.shape == (1, 3, *shape)
    assert torch.equal(ours, theirs)  # the same float32 operations in the same order


def test_predict_does_not_import_monai():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from medseg3d.models import load_model; from medseg3d.inference import "
        "predict_probabilities; m = load_model('brats', 'cpu'); "
        "predict_probabilities(m.model, np.zeros((4, 40, 40, 40), np.float32), kind='region', patch=(32, 32, "
        "32)); print('monai' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip() == "False"
