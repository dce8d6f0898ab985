"""validation/card_v2_1.py: the committed cards of brats-v2 and brats-v2.1 are what the committed records give
(held-out scores per case and pooled, lesion-wise, the nested estimate)."""

import json

from conftest import VALIDATION, load_script

card_v2_1 = load_script("card_v2_1", VALIDATION)


def test_the_committed_cards_are_made_again_from_the_records():
    v2, v21 = card_v2_1.cards()
    assert v2 == json.loads((card_v2_1.WEIGHTS / "brats-v2.json").read_text())
    assert v21 == json.loads((card_v2_1.WEIGHTS / "brats-v2.1.json").read_text())
    assert v21["cross_validation"]["nested"]["lw WT"] < v21["held_out_scores"]["lesion_dice_WT"]  # in-sample
