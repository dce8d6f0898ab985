"""scripts/crossval_report.py: fold means, pooled means, worst-first case list, variants paired per case."""

import csv
import json
from pathlib import Path

import pytest
from conftest import SCRIPTS, load_script

from medseg3d.io import write_json_atomic


@pytest.fixture(scope="module")
def crossval_report():
    return load_script("crossval_report")


def write_metrics(path: Path, rows: list[dict]) -> None:
    path.mkdir(parents=True)
    keys = ["case"] + [f"{m}_{r}" for m in ("dice", "hd95", "vol_ref") for r in ("WT", "TC", "ET")]
    with open(path / "metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, 1.0) for k in keys})


def write_folds(root: Path, variant: str, scores: dict) -> None:
    """``scores`` (case -> WT, TC, ET Dice) as ``root``'s held-out metrics: fold 0 holds cases a and b, fold 1 c."""
    for fold, cases in ((0, "ab"), (1, "c")):
        rows = [{"case": c, **{f"dice_{r}": v for r, v in zip(("WT", "TC", "ET"), scores[c])}} for c in cases]
        write_metrics(root / f"fold{fold}" / f"pred-{variant}", rows)


def test_report_and_pairing(tmp_path, crossval_report, capsys):
    # fold 0: cases a, b; fold 1: case c. The "sw" variant is better on a and c, worse on b.
    last = {"a": (0.5, 0.4, 0.3), "b": (0.7, 0.6, 0.5), "c": (0.9, 0.8, 0.7)}
    sw = {"a": (0.6, 0.4, 0.3), "b": (0.6, 0.6, 0.5), "c": (0.95, 0.8, 0.7)}
    for variant, scores in (("last", last), ("last-sw", sw)):
        write_folds(tmp_path, variant, scores)
    assert crossval_report.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # per fold: fold 0 WT (0.5 + 0.7) / 2 = 0.600, fold 1 0.900; over folds 0.750 +- 0.212; pooled 0.700
    assert "| 0 | 2 | 0.600 | 0.500 | 0.400 |" in out and "| 1 | 1 | 0.900 |" in out
    assert "**0.750** +- 0.212" in out and "| pooled over 3 cases | | 0.700 |" in out
    worst_first = [line.split(" | ")[0] for line in out.splitlines() if line.startswith(("| a |", "| b |", "| c |"))]
    assert worst_first[:3] == ["| a", "| b", "| c"]
    # paired: WT differences +0.1, -0.1, +0.05 -> mean +0.017, 2 better, 1 worse; TC and ET unchanged
    paired = out.split("Paired against `last`")[1]
    assert "| last-sw | 3 | +0.017 (2/1, p " in paired and "+0.000 (0/0, p n/a)" in paired

    # any other scored pred-NAME is found too, and any variant can be the reference
    write_metrics(tmp_path / "fold0" / "pred-last-sw-bf16", [{"case": "a", "dice_WT": 0.6, "dice_TC": 0.4,
                                                              "dice_ET": 0.3}])
    assert crossval_report.main([str(tmp_path), "--reference", "last-sw"]) == 0
    paired = capsys.readouterr().out.split("Paired against `last-sw`")[1]
    assert "| last-sw-bf16 | 1 | +0.000 (0/0, p n/a)" in paired and "| last | 3 | -0.017 (1/2, p " in paired



def test_against_another_cross_validation(tmp_path, crossval_report, capsys):
    # two presets on the same split: "strong" is +0.1 WT on a and b, -0.05 on c; TC and ET the same
    base = {"a": (0.5, 0.4, 0.3), "b": (0.7, 0.6, 0.5), "c": (0.9, 0.8, 0.7)}
    strong = {"a": (0.6, 0.4, 0.3), "b": (0.8, 0.6, 0.5), "c": (0.85, 0.8, 0.7)}
    for root, scores in (("base", base), ("strong", strong)):
        write_folds(tmp_path / root, "last-sw", scores)
    write_metrics(tmp_path / "base" / "fold0" / "pred-last", [{"case": "a"}])  # only base has it: no row
    assert crossval_report.main([str(tmp_path / "strong"), "--against", str(tmp_path / "base"),
                                 "--against", str(tmp_path / "empty")]) == 0
    out = capsys.readouterr().out
    section = out.split(f"`{tmp_path / 'strong'}` against `{tmp_path / 'base'}`")[1]
    # WT differences +0.1, +0.1, -0.05: mean +0.050, 2 better, 1 worse
    assert "| last-sw | 3 | +0.050 (2/1, p " in section and "| last |" not in section
    assert f"(`{tmp_path / 'empty'}` has none of these variants scored)" in out

def test_nothing_scored(tmp_path, crossval_report, capsys):
    assert crossval_report.main([str(tmp_path)]) == 1
    assert "nothing scored" in capsys.readouterr().err


def _bundle_into(tmp_path, monkeypatch, name: str):
    """scripts/bundle_model.py writing into a weights folder in tmp_path that holds a copy of v1 as ``name``."""
    import shutil
    import sys

    from medseg3d.models import bundled_models

    monkeypatch.syspath_prepend(str(SCRIPTS))
    sys.modules.pop("bundle_model", None)
    import bundle_model

    weights = tmp_path / "weights"
    weights.mkdir()
    source = bundled_models()["brats-v1"]
    shutil.copyfile(source, weights / f"{name}.safetensors")
    shutil.copyfile(source.with_suffix(".json"), weights / f"{name}.json")
    monkeypatch.setattr(bundle_model, "WEIGHTS", weights)
    return bundle_model, weights, source


def test_bundle_keep_weights_updates_card_and_inference(tmp_path, monkeypatch, capsys):
    import argparse
    import shutil

    from medseg3d.checkpoint import read_model_file

    bundle_model, weights, source = _bundle_into(tmp_path, monkeypatch, "brats")
    cv = tmp_path / "cv"
    for fold, (case, wt) in enumerate((("a", 0.8), ("b", 0.6))):
        write_metrics(cv / f"fold{fold}" / "pred-last-sw", [{"case": case, "dice_WT": wt, "hd95_WT": 5.0}])
    pooled = tmp_path / "pooled.csv"
    write_metrics(tmp_path / "pooled", [{"case": "a", "dice_WT": 0.8}, {"case": "b", "dice_WT": 0.6}])
    shutil.copyfile(tmp_path / "pooled" / "metrics.csv", pooled)
    args = argparse.Namespace(name="brats", metrics=pooled, cv=cv, cv_variant="last-sw", note="new note",
                              sliding_window=True, overlap=0.5, precision="mixed")
    bundle_model.update_card(args)
    card = json.loads((weights / "brats.json").read_text(encoding="utf-8"))
    assert card["held_out_scores"]["dice_WT"] == 0.7 and card["held_out_cases"] == ["a", "b"]
    assert card["cross_validation"]["weights"] == "last-sw" and card["cross_validation"]["folds"] == 2
    assert card["cross_validation"]["mean_sd_over_folds"]["dice_WT"] == "0.700 +- 0.141"
    assert card["note"] == "new note" and card["inference"].startswith("windows") and "mixed" in card["inference"]
    meta, state = read_model_file(weights / "brats.safetensors")
    assert meta["inference"] == {"sliding_window": True, "overlap": 0.5, "precision": "mixed"}
    _original_meta, original_state = read_model_file(source)
    assert all((state[k] == original_state[k]).all() for k in state)
    assert card["command"] == json.loads(source.with_suffix(".json").read_text(encoding="utf-8"))["command"]  # training record kept
    assert card["worst_cases"]["WT"] == ["b 0.600", "a 0.800"]  # worst first


def test_bundle_names_a_refiner_and_the_default(tmp_path, monkeypatch):
    import argparse

    from medseg3d.checkpoint import read_model_file

    bundle_model, weights, _ = _bundle_into(tmp_path, monkeypatch, "brats-v9")
    (weights / "aliases.json").write_text('{"brats": "brats-v1", "other": "x"}')
    write_metrics(tmp_path / "pooled", [{"case": "a", "dice_WT": 0.8}])
    args = argparse.Namespace(name="brats-v9", metrics=tmp_path / "pooled" / "metrics.csv", cv=None, note="",
                              sliding_window=False, overlap=0.5, precision="auto", refiner="brats-v9-refine")
    with pytest.raises(SystemExit, match="brats-v9-refine: no bundled refiner of that name"):
        bundle_model.update_card(args)  # the refiner is bundled first
    assert "refiner" not in read_model_file(weights / "brats-v9.safetensors")[0]["inference"]  # nothing written
    (weights / "brats-v9-refine.json").write_text('{"name": "brats-v9-refine", "training_minutes": 100}')
    card = json.loads((weights / "brats-v9.json").read_text(encoding="utf-8"))
    write_json_atomic(card | {"training_minutes": 120}, weights / "brats-v9.json")
    bundle_model.update_card(args)
    bundle_model.make_default("brats-v9", "brats")
    meta, _ = read_model_file(weights / "brats-v9.safetensors")
    assert meta["inference"]["refiner"] == "brats-v9-refine" and meta["inference"]["sliding_window"] is False
    card = json.loads((weights / "brats-v9.json").read_text(encoding="utf-8"))
    assert card["inference"].endswith("then the bundled refiner brats-v9-refine in the box around the tumour")
    assert card["total_training"].startswith("220 min of training on a 2-core CPU in all: 120 min this model")
    assert json.loads((weights / "aliases.json").read_text()) == {"brats": "brats-v9", "other": "x"}
    assert sorted(p.name for p in weights.iterdir()) == ["aliases.json", "brats-v9-refine.json", "brats-v9.json",
                                                         "brats-v9.safetensors"]


def _trained_run(run, source, cases, seconds, **config):
    """A training run folder: the bundled weights as last.safetensors, config.json and a log of ``seconds`` per
    50-iteration epoch."""
    import csv

    run.mkdir(parents=True)
    (run / "last.safetensors").write_bytes(source.read_bytes())
    config = {"dataset": "DATA", "preset": "brats", "minutes": 100000.0, "train_cases": cases,
              "software": {"medseg3d": "0.1.0", "torch": "2"}} | config
    (run / "config.json").write_text(json.dumps(config))
    with open(run / "log.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["epoch", "iteration", "seconds", "epoch_seconds"])
        w.writeheader()
        for epoch, s in enumerate(seconds, 1):
            w.writerow({"epoch": epoch, "iteration": 50 * epoch, "seconds": sum(seconds[:epoch]), "epoch_seconds": s})


def test_bundle_ensemble_of_fold_models(tmp_path, monkeypatch):
    import argparse

    from medseg3d.checkpoint import read_model_file
    from medseg3d.models import load_model

    bundle_model, weights, source = _bundle_into(tmp_path, monkeypatch, "unused")
    cv = tmp_path / "cv"
    for fold, (cases, seconds) in enumerate(((["b", "c"], [60, 600]), (["a", "c"], [30, 30]))):
        run = cv / f"fold{fold}"
        _trained_run(run, source, cases, seconds, split_file="split.json", augment="strong")
        write_metrics(run / "pred-last", [{"case": "a" if fold == 0 else "b", "dice_WT": 0.8 - 0.2 * fold}])
    write_metrics(tmp_path / "pooled", [{"case": "a", "dice_WT": 0.8}, {"case": "b", "dice_WT": 0.6}])
    args = argparse.Namespace(run=cv, name="brats-v9", model="last", metrics=tmp_path / "pooled" / "metrics.csv",
                              cv=None, cv_variant="last", note="", sliding_window=False, overlap=0.5, precision="auto")
    bundle_model.bundle_ensemble(args)
    card = json.loads((weights / "brats-v9.json").read_text(encoding="utf-8"))
    assert card["train_cases"] == ["a", "b", "c"] and card["held_out_cases"] == ["a", "b"]
    # wall clock 11 + 1 min; undisturbed: 2 epochs x median (330 s, 30 s) = 11 + 1 min
    assert card["training_minutes"] == 12 and card["training_time"].startswith("12 min of wall clock")
    assert "(11, 1); 12 min undisturbed" in card["training_time"]
    assert card["command"].startswith("FOLDS='0 1' scripts/crossval.sh DATA split.json")
    assert "--augment strong --minutes 100000; medseg3d ensemble" in card["command"]
    assert card["cross_validation"]["folds"] == 2 and card["held_out_scores"]["dice_WT"] == 0.7
    meta, _ = read_model_file(weights / "brats-v9.safetensors")
    assert meta["ensemble"]["members"] == 2 and meta["inference"]["sliding_window"] is False
    loaded = load_model(weights / "brats-v9.safetensors")
    assert loaded.meta.members == 2 and loaded.name == "brats-v9"


def test_bundle_models_trained_on_all_cases_with_their_ensembles_cross_validation(tmp_path, monkeypatch):
    import argparse

    from medseg3d.models import load_model

    bundle_model, weights, source = _bundle_into(tmp_path, monkeypatch, "unused")
    members = [tmp_path / "v2-v1", tmp_path / "v2-strong"]
    software = {"medseg3d": "0.1.0", "torch": "2", "threads": 1}
    _trained_run(members[0], source, ["a", "b", "c"], [120, 60, 60], all_cases=True, software=software)
    _trained_run(members[1], source, ["a", "b", "c"], [60, 60, 60], all_cases=True, augment="strong", software=software)
    cv = tmp_path / "cv"
    for fold, case in enumerate("abc"):
        write_metrics(cv / f"fold{fold}" / "pred-ens-cv-strong-sw", [{"case": case, "dice_WT": 0.9 - 0.1 * fold}])
    write_metrics(tmp_path / "pooled", [{"case": c, "dice_WT": 0.9 - 0.1 * k} for k, c in enumerate("abc")])
    args = argparse.Namespace(members=members, name="brats-v9", model="last", metrics=tmp_path / "pooled" / "metrics.csv",
                              cv=cv, cv_variant="ens-cv-strong-sw", note="", sliding_window=True, overlap=0.5,
                              precision="auto")
    bundle_model.bundle_members(args)
    card = json.loads((weights / "brats-v9.json").read_text(encoding="utf-8"))
    assert card["trained_on"].endswith("each trained on all of them (v2-v1: --preset brats --minutes 100000; "
                                       "v2-strong: --preset brats --augment strong --minutes 100000)")
    assert card["command"].startswith(f"medseg3d train DATA --out {members[0]} --all-cases --preset brats")
    assert card["command"].endswith("-o brats-v9.safetensors") and "--augment strong" in card["command"]
    assert card["training_minutes"] == 7 and "(4, 3); 6 min undisturbed" in card["training_time"]
    assert card["training_time"].endswith("150 iterations each; 1 thread each, 0.1 core-hours (wall clock x threads)")  # wall 240 + 180 s; 3 epochs x median 60 s each
    assert card["cross_validation"]["weights"] == "ens-cv-strong-sw" and card["cross_validation"]["folds"] == 3
    assert card["held_out_scores"]["dice_WT"] == 0.8 and card["worst_cases"]["WT"][0] == "c 0.700"
    assert "none of them saw" in card["note"] and card["inference"].startswith("windows")
    loaded = load_model(weights / "brats-v9.safetensors")
    assert loaded.meta.members == 2 and loaded.inference_settings(None, None) == (True, 0.5)
    _trained_run(tmp_path / "fold-run", source, ["a"], [60], fold=0)
    with pytest.raises(SystemExit, match="fold-run: not trained on all cases"):
        bundle_model.bundle_members(argparse.Namespace(**vars(args) | {"members": [members[0], tmp_path / "fold-run"]}))
    with pytest.raises(SystemExit, match="give --cv"):
        bundle_model.bundle_members(argparse.Namespace(**vars(args) | {"cv": None}))


def test_an_unfinished_cross_validation_says_so(tmp_path, crossval_report, capsys, monkeypatch):
    from medseg3d.models.describe import card_lines

    bundle_model = load_script("bundle_model")
    for fold in range(5):  # five folds planned; two scored so far
        (tmp_path / f"fold{fold}").mkdir()
        (tmp_path / f"fold{fold}" / "config.json").write_text(json.dumps({"folds": 5, "fold": fold}))
    for fold, (case, wt) in enumerate((("a", 0.9), ("b", 0.7))):
        write_metrics(tmp_path / f"fold{fold}" / "pred-ens-sw", [{"case": case, "dice_WT": wt, "dice_TC": 0.8,
                                                                   "dice_ET": 0.6, "hd95_WT": 4.0}])
    assert crossval_report.main([str(tmp_path)]) == 0
    assert "### `ens-sw` weights (2 of 5 folds: incomplete)" in capsys.readouterr().out
    cv = bundle_model.cross_validation(tmp_path, "ens-sw")
    assert (cv["folds"], cv["folds_planned"], cv["complete"]) == (2, 5, False)
    assert cv["mean_sd_over_folds"]["dice_WT"] == "0.800 +- 0.141"
    card = {"held_out_scores": {"dice_WT": 0.8, "dice_TC": 0.8, "dice_ET": 0.6, "hd95_WT": 4.0, "hd95_TC": None,
                                "hd95_ET": 1.0}, "held_out_cases": ["a", "b"], "cross_validation": cv,
            "worst_cases": {"WT": ["b 0.700", "a 0.900"], "TC": ["a 0.800"]}}
    scores, folds, worst = card_lines(card)
    assert scores.endswith("Dice WT / TC / ET 0.800 / 0.800 / 0.600, HD95 4.0 / n/a / 1.0 mm (2 cases, each scored "
                           "by a model that never saw it)")
    assert "2 of 5 folds (incomplete), ens-sw weights: WT 0.800 +- 0.141, TC 0.800 +- 0.000" in folds
    assert folds.endswith("per fold: fold 0 0.900 / 0.800 / 0.600; fold 1 0.700 / 0.800 / 0.600")
    assert worst.endswith("WT b 0.700, a 0.900; TC a 0.800")
    for fold in (2, 3, 4):  # every fold scored: complete, and said plainly
        write_metrics(tmp_path / f"fold{fold}" / "pred-ens-sw", [{"case": f"c{fold}", "dice_WT": 0.8}])
    cv = bundle_model.cross_validation(tmp_path, "ens-sw")
    assert (cv["folds"], cv["complete"]) == (5, True) and card_lines({"cross_validation": cv})[0].split()[2:4] == [
        "5", "folds,"]
    with pytest.raises(SystemExit, match="no fold\\*/pred-last-sw/metrics.csv; score at least one fold first"):
        bundle_model.cross_validation(tmp_path, "last-sw")


def test_side_by_side_table_and_picture(tmp_path, crossval_report, capsys):
    last = {"a": (0.5, 0.4, 0.3), "b": (0.7, 0.6, 0.5), "c": (0.9, 0.8, 0.7)}
    ens = {"a": (0.6, 0.4, 0.2), "b": (0.65, 0.7, 0.5), "c": (0.95, 0.8, 0.7)}
    for variant, scores in (("last-sw", last), ("ens-sw", ens)):
        write_folds(tmp_path, variant, scores)
    png = tmp_path / "pics" / "v1-v2.png"
    assert crossval_report.main([str(tmp_path), "--reference", "last-sw", "--variant", "last-sw", "--variant", "ens-sw",
                                 "--side-by-side", "--png", str(png)]) == 0
    out = capsys.readouterr().out.split("side by side (3 held-out cases")[1].splitlines()
    rows = [line for line in out if line.startswith("| ")][1:]  # after the header
    # worst ens-sw WT first: a 0.6, b 0.65, c 0.95; each with its fold and the difference
    assert rows[0] == "| a | 0 | 0.500 / 0.400 / 0.300 | 0.600 / 0.400 / 0.200 | +0.100 / +0.000 / -0.100 |"
    assert rows[1].startswith("| b | 0 |") and rows[2].startswith("| c | 1 |")
    # means: last-sw 0.700 / 0.600 / 0.500; ens-sw 0.733 / 0.633 / 0.467
    assert rows[3] == ("| **mean** | | **0.700 / 0.600 / 0.500** | **0.733 / 0.633 / 0.467** | "
                       "+0.033 / +0.033 / -0.033 |")
    assert rows[4] == "| lowest WT | | a 0.500 | a 0.600 | |"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(png.parent.glob("*.tmp*"))
    assert crossval_report.main([str(tmp_path), "--reference", "last-sw", "--variant", "last-sw", "--png",
                                 str(png)]) == 1  # nothing to compare with
    assert "--png needs a --variant other than the reference" in capsys.readouterr().err


def test_pooled_csv_keeps_every_fold_s_columns(tmp_path, crossval_report):
    """A fold restored with fewer columns (fold 0 here: Dice and HD95 only) pools with a fully scored fold: every
    column is kept, the missing ones left empty."""
    write_folds(tmp_path, "ens", {"a": (0.5, 0.4, 0.3), "b": (0.7, 0.6, 0.5), "c": (0.9, 0.8, 0.7)})
    extra = tmp_path / "fold1" / "pred-ens" / "metrics.csv"
    with extra.open(newline="") as f:
        rows = list(csv.DictReader(f))
    with extra.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*rows[0], "sens_WT"])
        writer.writeheader()
        writer.writerows([dict(r, sens_WT=0.95) for r in rows])
    pooled = tmp_path / "pooled.csv"
    assert crossval_report.main([str(tmp_path), "--variant", "ens", "--csv", str(pooled)]) == 0
    with pooled.open(newline="") as f:
        got = {r["case"]: r for r in csv.DictReader(f)}
    assert sorted(got) == ["a", "b", "c"]
    assert got["c"]["sens_WT"] == "0.95" and got["a"]["sens_WT"] == "" and got["a"]["dice_WT"] == "0.5"


def test_splice_keeps_a_document_s_table_current(tmp_path, crossval_report, capsys):
    last = {"a": (0.5, 0.4, 0.3), "b": (0.7, 0.6, 0.5), "c": (0.9, 0.8, 0.7)}
    ens = {"a": (0.6, 0.4, 0.2), "b": (0.65, 0.7, 0.5), "c": (0.95, 0.8, 0.7)}
    for variant, scores in (("last-sw", last), ("ens-sw", ens)):
        write_folds(tmp_path / "cv", variant, scores)
    doc = tmp_path / "results.md"
    doc.write_text("# Results\n\nbefore\n<!-- v1-v2 -->\nold table\n<!-- /v1-v2 -->\nafter\n", encoding="utf-8")
    argv = [str(tmp_path / "cv"), "--reference", "last-sw", "--variant", "ens-sw", "--variant", "last-sw",
            "--splice", f"{doc}:v1-v2", "--names", "v1 preset", "v2 recipe"]
    assert crossval_report.main(argv) == 0
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Results\n\nbefore\n<!-- v1-v2 -->\nFolds 0 and 1: 3 held-out cases")
    assert text.endswith("<!-- /v1-v2 -->\nafter\n") and "old table" not in text
    assert "| case | fold | v1 preset WT / TC / ET | v2 recipe WT / TC / ET | difference |" in text
    assert "| a | 0 | 0.500 / 0.400 / 0.300 | 0.600 / 0.400 / 0.200 | +0.100 / +0.000 / -0.100 |" in text
    # fold 0: last-sw WT (0.5 + 0.7) / 2, ens-sw (0.6 + 0.65) / 2 = 0.625; fold 1 0.900 and 0.950
    assert ("Per fold (WT / TC / ET): fold 0 v1 preset 0.600 / 0.500 / 0.400, v2 recipe 0.625 / 0.550 / 0.350; "
            "fold 1 v1 preset 0.900 / 0.800 / 0.700, v2 recipe 0.950 / 0.800 / 0.700.") in text
    assert "Paired over the 3 cases (v2 recipe minus v1 preset; cases better / worse; Wilcoxon p): WT +0.033 (2/1, p " in text
    # again: the same document (idempotent), no temporary left
    assert crossval_report.main(argv) == 0 and doc.read_text(encoding="utf-8") == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cv", "results.md"]
    # a document without the block, or no such file: one clear line, the document untouched
    doc.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="needs exactly one '<!-- v1-v2 -->' line"):
        crossval_report.main(argv)
    assert doc.read_text(encoding="utf-8") == "no markers\n"
    with pytest.raises(SystemExit, match="give FILE:NAME"):
        crossval_report.main(argv[:-5] + ["--splice", str(tmp_path / "missing.md:v1-v2")])
