"""The report: paired statistics against the reference run, class and region scores."""

import numpy as np
import pytest

from medseg3d import experiments
from medseg3d.experiments import (
    EXPERIMENTS,
    paired_comparison,
)
from medseg3d.labels import BINARY, get_scheme
from medseg3d.metrics import score_case


def test_paired_comparison_known_answer():
    ref = {"a": {"dice_WT": 0.5}, "b": {"dice_WT": 0.6}, "c": {"dice_WT": 0.4}}
    other = {"a": {"dice_WT": 0.6}, "b": {"dice_WT": 0.4}, "c": {"dice_WT": 0.7}, "d": {"dice_WT": 0.1}}
    # common cases a, b, c: differences +0.1, -0.2, +0.3 (ranks 1, 2, 3): W+ = 4, W- = 2; of the 8 sign
    # patterns, 6 are at least as extreme (W+ in {0, 1, 2, 4, 5, 6}), so the exact two-sided p is 0.75
    c = paired_comparison(ref, other, "dice_WT")
    assert c["n"] == 3 and c["better"] == 2 and c["worse"] == 1
    assert c["mean_diff"] == pytest.approx(0.2 / 3) and c["p"] == pytest.approx(0.75)
    assert paired_comparison(ref, {"d": {"dice_WT": 0.1}}, "dice_WT")["n"] == 0


def test_report_pairs_against_the_reference_run():
    exp = EXPERIMENTS["modalities"]
    assert exp.reference_run == "all" and EXPERIMENTS["ablations"].reference_run == "concat-jaccard"
    with pytest.raises(ValueError, match="reference run"):
        experiments.Experiment("x", "", "", (experiments.Run("a", {}, ""),), reference="b")

    def rows(wt):
        return {c: {"dice_WT": v, "fold": 0, "vol_ref_WT": 10.0} for c, v in zip("pqr", wt)}

    cases = {"flair": rows([0.5, 0.6, 0.7]), "t1": rows([0.1, 0.2, 0.3])}
    # until the reference run has scores: no paired section, cases ordered by the first scored run
    assert experiments.paired_lines(exp, cases, ["dice_WT"]) == []
    assert "worst `flair` WT first" in "\n".join(experiments.per_case_lines(exp, cases))
    cases["all"] = rows([0.9, 0.4, 0.8])
    paired = "\n".join(experiments.paired_lines(exp, cases, ["dice_WT"]))
    assert "## Paired against `all`" in paired
    assert "| flair | 3 | -0.100 (1/2," in paired and "| t1 | 3 | -0.500 (0/3," in paired
    assert "| all |" not in paired
    per_case = experiments.per_case_lines(exp, cases)
    assert "worst `all` WT first" in "\n".join(per_case)
    assert [line.split(" | ")[0] for line in per_case if line.startswith("| ") and " | 0 | " in line] == [
        "| q",
        "| r",
        "| p",
    ]


def test_binary_scheme_scores_class_and_region():
    # the binary class and its region carry different names, so evaluate can score both
    a = np.zeros((6, 6, 6), np.uint8)
    a[1:4, 1:4, 1:4] = 1
    row = score_case(a, a, {"tumour": (1,)}, BINARY.regions)
    assert row["dice_tumour"] == row["dice_WT"] == 1.0
    assert get_scheme("binary-regions").n_outputs == 1
