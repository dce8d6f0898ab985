"""CrossEntropyLoss: plain, given weights, batch-frequency weights, ignore_index."""

import math

import numpy as np
import pytest
import torch

from medseg3d.errors import InputError
from medseg3d.losses import CrossEntropyLoss, frequency_weights

LN2, LN3 = math.log(2.0), math.log(3.0)


def tiny_case():
    """p = (0.5, 0.5) and (0.75, 0.25); targets 0 and 1, so -log p_t = ln 2 and ln 4."""
    return torch.tensor([[[0.0, LN3], [0.0, 0.0]]]), torch.tensor([[0, 1]])


def test_plain_known_answer_by_hand():
    logits, target = tiny_case()
    assert CrossEntropyLoss()(logits, target).item() == pytest.approx(1.5 * LN2, rel=1e-6)


def test_given_weights_known_answer_by_hand():
    logits, target = tiny_case()
    # (1 * ln 2 + 3 * ln 4) / (1 + 3)
    assert CrossEntropyLoss(weight=[1.0, 3.0])(logits, target).item() == pytest.approx(7 / 4 * LN2, rel=1e-6)


def test_frequency_weights_values():
    target = torch.tensor([[0, 0, 0, 1]])  # class 2 absent; V = 4, K = 2 classes present
    weights = frequency_weights(target, 3)
    assert weights.tolist() == pytest.approx([4 / (2 * 3), 4 / (2 * 1), 0.0])


def test_frequency_weighted_is_mean_of_per_class_means():
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 3, 7, generator=gen)
    target = torch.tensor([[0, 0, 0, 0, 0, 1, 0], [0, 0, 2, 0, 0, 1, 0]])
    x = logits.double().numpy()
    log_p = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    nll = -np.take_along_axis(log_p, target.numpy()[:, None], axis=1)[:, 0]
    expected = np.mean([nll[target.numpy() == c].mean() for c in range(3)])
    assert CrossEntropyLoss(weight="frequency")(logits, target).item() == pytest.approx(expected, rel=1e-5)


def test_perfect_prediction_gives_zero():
    target = torch.tensor([[0, 1, 2, 1]])
    logits = 200 * torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float() - 100
    for weight in (None, "frequency", [1, 2, 3]):
        assert CrossEntropyLoss(weight=weight)(logits, target).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("weight", [None, "frequency", [0.2, 1.0, 5.0]])
def test_ignore_index_excluded(weight):
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(1, 3, 10, generator=gen)
    target = torch.randint(0, 3, (1, 10), generator=gen)
    target[0, ::3] = 255
    keep = target[0] != 255
    loss = CrossEntropyLoss(weight=weight, ignore_index=255)
    assert loss(logits, target).item() == pytest.approx(
        loss(logits[..., keep], target[:, keep]).item(), rel=1e-6
    )


def test_all_voxels_ignored_gives_zero_not_nan():
    loss = CrossEntropyLoss(ignore_index=255)(torch.randn(1, 2, 3), torch.full((1, 3), 255))
    assert loss.item() == 0.0


def test_rejects_bad_input():
    logits = torch.randn(1, 3, 4)
    with pytest.raises(InputError, match="one weight per class"):
        CrossEntropyLoss(weight=[1.0, 2.0])(logits, torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(InputError, match="frequency"):
        CrossEntropyLoss(weight="inverse")
    with pytest.raises(InputError, match=">= 0"):
        CrossEntropyLoss(weight=[1.0, -1.0, 1.0])
    with pytest.raises(InputError, match="outside"):
        CrossEntropyLoss()(logits, torch.tensor([[0, 1, 2, 7]]))
