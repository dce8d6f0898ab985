"""JaccardLoss (paper / smooth) and SoftJaccardMinMaxLoss: known answers, reductions, the empty-class flaw."""

import math

import numpy as np
import pytest
import torch

from medseg3d.errors import InputError
from medseg3d.losses import JaccardLoss, SoftJaccardMinMaxLoss

LN3 = math.log(3.0)


def tiny_case():
    """One image, 2 classes, 2 voxels: p = (0.5, 0.5) and (0.75, 0.25); target classes 0 and 1."""
    logits = torch.tensor([[[0.0, LN3], [0.0, 0.0]]])  # (N=1, C=2, V=2)
    target = torch.tensor([[0, 1]])
    return logits, target


def np_softmax(x, axis=1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_tanimoto(logits, target, smooth=None, clip=1e-8, include_background=True):
    """Independent reference: explicit loops over images and classes."""
    logits = logits.astype(np.float64)
    probs = np.clip(np_softmax(logits), clip, 1 - clip)
    first = 0 if include_background else 1
    per_image = []
    for n in range(logits.shape[0]):
        total = 0.0
        for c in range(first, logits.shape[1]):
            p = probs[n, c].ravel()
            t = (target[n].ravel() == c).astype(np.float64)
            inter = np.dot(p, t)
            den = np.dot(p, p) + np.dot(t, t) - inter
            total += 1 - (inter / den if smooth is None else (inter + smooth) / (den + smooth))
        per_image.append(total)
    return float(np.mean(per_image))


def test_paper_known_answer_by_hand():
    logits, target = tiny_case()
    # class 0: I = .5, sum p^2 = .8125, sum t^2 = 1 -> 1 - .5/1.3125 = 1 - 8/21
    # class 1: I = .25, sum p^2 = .3125, sum t^2 = 1 -> 1 - .25/1.0625 = 1 - 4/17
    expected = 2 - 8 / 21 - 4 / 17
    assert JaccardLoss(mode="paper")(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_smooth_known_answer_by_hand():
    logits, target = tiny_case()
    expected = 2 - (0.5 + 1) / (1.3125 + 1) - (0.25 + 1) / (1.0625 + 1)  # = 910 / 1221
    assert expected == pytest.approx(910 / 1221)
    assert JaccardLoss(mode="smooth", smooth=1.0)(logits, target).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("mode", ["paper", "smooth"])
@pytest.mark.parametrize("include_background", [True, False])
def test_matches_numpy_reference(mode, include_background):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 3, 4, generator=gen) * 3
    target = torch.randint(0, 3, (2, 3, 4), generator=gen)
    loss = JaccardLoss(mode=mode, smooth=0.5, include_background=include_background)(logits, target)
    expected = np_tanimoto(
        logits.numpy(),
        target.numpy(),
        smooth=None if mode == "paper" else 0.5,
        include_background=include_background,
    )
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_paper_form_is_a_sum_over_classes():
    # Completely wrong with every class present: each class term is ~1, so the loss is ~C, not ~1.
    target = torch.tensor([[0, 1, 2]])
    logits = torch.full((1, 3, 3), -100.0)
    logits[0, (1, 2, 0), (0, 1, 2)] = 100.0
    assert JaccardLoss()(logits, target).item() == pytest.approx(3.0, abs=1e-4)


def test_perfect_prediction_gives_zero_when_every_class_is_present():
    target = torch.tensor([[[0, 1], [2, 1]]])
    logits = 200 * torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float() - 100
    for loss in (JaccardLoss(), JaccardLoss(mode="smooth"), SoftJaccardMinMaxLoss()):
        assert loss(logits, target).item() == pytest.approx(0.0, abs=1e-6)


def test_empty_class_flaw_of_paper_form_and_smooth_fix():
    """An all-background image predicted nearly right: paper form ~1 per absent class, smoothed form ~0."""
    target = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    logits = torch.zeros(1, 3, 4, 4, 4)
    logits[:, 0] = 5.0  # p(background) = e^5 / (e^5 + 2) ~ 0.987 everywhere
    paper = JaccardLoss(mode="paper")(logits, target).item()
    smooth = JaccardLoss(mode="smooth", smooth=1.0)(logits, target).item()
    assert paper > 1.9  # the two absent classes cost ~1 each despite the near-perfect prediction
    assert smooth < 0.05
    # The seed's min/max form shows the same flaw once background is excluded: 1 - s / (FP mass + s),
    # i.e. nearly 1 for any false-positive mass well above s (here 128 voxels x p_fg ~ 0.85).
    false_positive_mass = 128 / (math.exp(5) + 2)
    minmax_fg = SoftJaccardMinMaxLoss(include_background=False, smooth=1.0)(logits, target).item()
    assert minmax_fg == pytest.approx(1 - 1 / (false_positive_mass + 1), rel=1e-5)
    assert SoftJaccardMinMaxLoss(include_background=False, smooth=0.01)(logits, target).item() > 0.98
    assert SoftJaccardMinMaxLoss(include_background=True)(logits, target).item() < 0.05


def test_minmax_known_answer_by_hand():
    logits, target = tiny_case()
    # P = [[.5, .75], [.5, .25]], T = [[1, 0], [0, 1]]: sum min = .5 + 0 + 0 + .25, sum max = 1 + .75 + .5 + 1
    assert SoftJaccardMinMaxLoss(smooth=0.0)(logits, target).item() == pytest.approx(
        1 - 0.75 / 3.25, rel=1e-6
    )
    assert SoftJaccardMinMaxLoss(smooth=1.0)(logits, target).item() == pytest.approx(
        1 - 1.75 / 4.25, rel=1e-6
    )


@pytest.mark.parametrize(
    "loss",
    [JaccardLoss(), JaccardLoss(mode="smooth"), SoftJaccardMinMaxLoss()],
    ids=["paper", "smooth", "minmax"],
)
def test_batch_vs_image_reduction(loss):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, 4, generator=gen)
    logits[1] *= 10
    target = torch.randint(0, 3, (2, 4, 4), generator=gen)
    loss.reduction = "image"
    per_image = (loss(logits[:1], target[:1]) + loss(logits[1:], target[1:])) / 2
    assert loss(logits, target).item() == pytest.approx(per_image.item(), rel=1e-6)
    loss.reduction = "batch"
    joined = loss(
        torch.cat([logits[0], logits[1]], dim=1)[None], torch.cat([target[0], target[1]], dim=0)[None]
    )
    batch = loss(logits, target)
    assert batch.item() == pytest.approx(joined.item(), rel=1e-6)
    assert abs(batch.item() - per_image.item()) > 1e-3


@pytest.mark.parametrize("loss", [JaccardLoss(ignore_index=9), SoftJaccardMinMaxLoss(ignore_index=9)])
def test_ignore_index_excluded(loss):
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(1, 3, 10, generator=gen)
    target = torch.randint(0, 3, (1, 10), generator=gen)
    target[0, [1, 4, 7]] = 9
    keep = target[0] != 9
    expected = loss(logits[..., keep], target[:, keep])
    assert loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    changed = logits.clone()
    changed[..., ~keep] = 50.0
    assert loss(changed, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_rejects_bad_input():
    logits = torch.randn(1, 3, 4, 4)
    with pytest.raises(InputError, match="shape"):
        JaccardLoss()(logits, torch.zeros(1, 1, 4, 4, dtype=torch.long))
    with pytest.raises(InputError, match="outside 0..2"):
        JaccardLoss()(logits, torch.full((1, 4, 4), 3))
    with pytest.raises(InputError, match="integer"):
        JaccardLoss()(logits, torch.zeros(1, 4, 4))
    with pytest.raises(InputError, match="mode"):
        JaccardLoss(mode="fancy")
    with pytest.raises(InputError, match="reduction"):
        SoftJaccardMinMaxLoss(reduction="voxel")
