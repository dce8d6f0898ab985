"""scripts/crossval_thresholds.py: labels painted as predict paints them, thresholds chosen without the case."""


import numpy as np
import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def thresholds():
    return load_script("crossval_thresholds")


def case(et_prob: float):
    """A 1x1x10 line: 6 tumour voxels (WT), of which 4 core (TC), of which 2 enhancing (ET).

    The network is sure of WT and TC; it gives the 2 ET voxels ``et_prob`` and 2 core voxels 0.3."""
    probs = np.zeros((3, 1, 1, 10), dtype=np.float32)
    probs[0, 0, 0, :6] = 0.9
    probs[1, 0, 0, :4] = 0.9
    probs[2, 0, 0, :2] = et_prob
    probs[2, 0, 0, 2:4] = 0.3
    masks = np.zeros((3, 1, 1, 10), dtype=bool)
    masks[0, 0, 0, :6] = masks[1, 0, 0, :4] = masks[2, 0, 0, :2] = True
    return probs, masks


def test_region_dice_known_answer(thresholds):
    probs, masks = case(0.45)
    # at 0.5 the ET voxels are missed (ET Dice 0); WT and TC are exact
    assert thresholds.region_dice(probs, masks, [0.5, 0.5, 0.5]) == pytest.approx([1.0, 1.0, 0.0])
    # at 0.4 ET is exact; at 0.25 the 2 core voxels at 0.3 join it: Dice 2*2 / (4 + 2)
    assert thresholds.region_dice(probs, masks, [0.5, 0.5, 0.4])[2] == pytest.approx(1.0)
    assert thresholds.region_dice(probs, masks, [0.5, 0.5, 0.25])[2] == pytest.approx(4 / 6)


def test_choose_prefers_threshold_nearest_half_on_ties(thresholds):
    cases = [("a", *case(0.45)), ("b", *case(0.42))]
    # ET: every threshold in (0.3, 0.42] is exact on both; 0.4 is the one nearest 0.5. WT and TC are flat
    # over (0.0, 0.9): they keep 0.5
    assert thresholds.choose(cases, [0.2, 0.3, 0.35, 0.4, 0.5, 0.6]) == [0.5, 0.5, 0.4]
