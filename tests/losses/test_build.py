"""build_loss, LOSSES and CombinedLoss; properties every registered loss must have."""

import pytest
import torch

from medseg3d.errors import InputError
from medseg3d.losses import (
    LOSSES,
    CombinedLoss,
    CrossEntropyLoss,
    DiceLoss,
    JaccardLoss,
    RegionDiceBCELoss,
    build_loss,
)

NAMES = sorted(LOSSES)


def example(kind, confident_wrong=False):
    """(logits, target) with extreme logits (p = 0 and 1 up to float rounding), every class present."""
    if kind == "multiclass":
        target = torch.tensor([[[0, 1, 2], [2, 1, 0]]])
        shown = (target + 1) % 3 if confident_wrong else target
        logits = 200 * torch.nn.functional.one_hot(shown, 3).movedim(-1, 1).float() - 100
        return logits, target
    target = torch.tensor([[[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]])
    shown = 1 - target if confident_wrong else target
    return 200 * shown - 100, target


def test_registry_lists_every_name_with_a_description():
    assert set(LOSSES) == {
        "jaccard",
        "jaccard-smooth",
        "jaccard-minmax",
        "dice",
        "dice-plain",
        "ce",
        "wce",
        "focal",
        "region-dice",
        "region-dice-bce",
        "bce",
    }
    assert all(isinstance(text, str) and text and "\n" not in text for text in LOSSES.values())


@pytest.mark.parametrize("name", NAMES)
def test_every_loss_declares_kind_and_reaches_zero_when_perfect(name):
    loss = build_loss(name, n_classes=3)
    assert loss.kind in ("multiclass", "region")
    logits, target = example(loss.kind)
    assert loss(logits, target).item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("wrong", [False, True], ids=["right", "wrong"])
def test_every_loss_has_finite_gradients_at_extreme_logits(name, wrong):
    loss = build_loss(name)
    logits, target = example(loss.kind, confident_wrong=wrong)
    logits.requires_grad_(True)
    value = loss(logits, target)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(logits.grad).all()


def test_names_map_to_the_right_configuration():
    assert isinstance(build_loss("jaccard"), JaccardLoss) and build_loss("jaccard").mode == "paper"
    assert build_loss("jaccard-smooth").mode == "smooth"
    assert build_loss("dice").squared and not build_loss("dice-plain").squared
    assert build_loss("wce").frequency and not build_loss("ce").frequency
    assert build_loss("wce", weight=[1, 2, 3]).weight.tolist() == [1, 2, 3]
    assert build_loss(" Region-Dice-BCE ").kind == "region"


def test_combination_is_the_weighted_sum_of_its_parts():
    gen = torch.Generator().manual_seed(11)
    logits = torch.randn(2, 3, 4, 4, generator=gen)
    target = torch.randint(0, 3, (2, 4, 4), generator=gen)
    combined = build_loss("0.5*dice + 2*ce", n_classes=3)
    assert isinstance(combined, CombinedLoss) and combined.kind == "multiclass"
    expected = 0.5 * DiceLoss()(logits, target) + 2 * CrossEntropyLoss()(logits, target)
    assert combined(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    assert combined.names == ["dice", "ce"] and combined.weights == [0.5, 2.0]
    plain = build_loss("jaccard+ce")(logits, target)
    assert plain.item() == pytest.approx(
        (JaccardLoss()(logits, target) + CrossEntropyLoss()(logits, target)).item()
    )
    single = build_loss("3*focal")
    assert isinstance(single, CombinedLoss) and single.weights == [3.0]


def test_keyword_arguments_go_to_every_part_that_takes_them():
    loss = build_loss("jaccard-smooth+wce", ignore_index=255, smooth=0.1)
    jaccard, wce = loss.parts
    assert jaccard.ignore_index == 255 and wce.ignore_index == 255 and jaccard.smooth == 0.1
    region = build_loss("region-dice-bce", bce_weight=0.3)
    assert isinstance(region, RegionDiceBCELoss) and region.bce_weight == 0.3


def test_errors_are_one_line_input_errors():
    with pytest.raises(InputError, match="choose from jaccard, jaccard-smooth") as info:
        build_loss("tversky")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="different kinds"):
        build_loss("dice+region-dice")
    with pytest.raises(InputError, match="no argument gamma2"):
        build_loss("focal", gamma2=1.0)
    with pytest.raises(InputError, match="cannot read"):
        build_loss("dice++ce")
    with pytest.raises(InputError, match="cannot read"):
        build_loss("-1*dice")
    with pytest.raises(InputError, match="positive"):
        build_loss("0*dice")
    with pytest.raises(InputError, match="one per class"):
        build_loss("wce", n_classes=4, weight=[1, 2])
    with pytest.raises(InputError, match="twice"):
        build_loss("ce+ce")
