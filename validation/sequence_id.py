"""Fit and measure sequence identification from content (``medseg3d.datasets.sequence_id``).

    nice -n 10 python validation/sequence_id.py [--data ../shared/data] [--features /tmp/seqid.npz]
        [--write-weights] [--table docs/reliability.md-table.md]

Examples, grouped by patient:
* the 27 shared BraTS 2018 cases as shipped (skull-stripped, one 1 mm grid: the pairwise statistic counts);
* each of them made raw by ``medseg3d.raw.simulate`` (own oblique grid per sequence, thick slices, gain;
  seed = the case's index): per-channel statistics only, as for raw channels before co-registration;
* the raw clinical case TCGA-FG-6692 as exported (skull on, 5.5 mm slices, own grids) and after another
  group's BraTS preprocessing (brainles_sri24), one patient;
* the BRATS 2012 case in .mha.

Leave one patient out: the model is fitted without every example of the patient and scores its examples
(every order of its four channels is scored, so each example is 24 tests of one assignment). Prints the
accuracy per example kind, per pair of sequences and the confident mistakes, as a Markdown table.
``--write-weights`` fits on everything and writes ``src/medseg3d/weights/sequence_id.json``. Features are
cached in ``--features`` (about 6 minutes to compute on 2 cores, then seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from medseg3d.datasets import find_cases
from medseg3d.datasets.sequence_id import (
    CONFIDENT,
    SEQUENCES,
    channel_features,
    identify_features,
    pair_brighter,
    sample_channels,
)
from medseg3d.io import read_volume

ROOT = Path(__file__).resolve().parents[1]


def _example(volumes: dict, kind: str, group: str, name: str) -> dict:
    arrays = [volumes[m].array.astype(np.float32) for m in SEQUENCES]
    samples, joint = sample_channels(arrays, [volumes[m].spacing for m in SEQUENCES])
    return {
        "kind": kind,
        "group": group,
        "name": name,
        "features": np.stack([channel_features(s) for s in samples]),
        "samples": [s[:: max(1, s.size // 100_000)] for s in samples],
        "joint": None if joint is None else joint[:, :: max(1, joint.shape[1] // 100_000)],
    }


def collect(data: Path) -> list[dict]:
    from medseg3d.raw.simulate import simulate

    out = []
    cases = find_cases(data / "brats2018")
    for k, case in enumerate(cases):
        vols = {m: v for m, _, v in case.select(SEQUENCES).read_channels()}
        out.append(_example(vols, "BraTS 2018", case.case_id, case.case_id))
        sim = simulate(vols, None, seed=k)
        out.append(_example(sim.volumes, "BraTS 2018, simulated raw", case.case_id, case.case_id + " raw"))
        print(f"{case.case_id}: done", file=sys.stderr, flush=True)
    clinical = data / "raw_clinical" / "TCGA-FG-6692"
    for sub, kind in (("raw", "clinical raw (skull on)"), ("brainles_sri24", "clinical, BraTS-preprocessed")):
        vols = {m: read_volume(clinical / sub / f"{m}.nii.gz") for m in SEQUENCES}
        out.append(_example(vols, kind, "TCGA-FG-6692", f"TCGA-FG-6692 {sub}"))
    mha = find_cases(data / "brats2012_mha")[0]
    vols = {m: v for m, _, v in mha.select(SEQUENCES).read_channels()}
    out.append(_example(vols, "BRATS 2012 (.mha)", "BRATS_HG0015", "BRATS_HG0015"))
    return out


def fit(examples: list[dict], shrink: float = 0.15) -> dict:
    """Gaussian per sequence with a shared, shrunk covariance; a symmetric logistic on the pair statistic;
    a temperature that softens the per-channel scores so that a held-out patient's share is not
    overconfident."""
    x = np.concatenate([e["features"] for e in examples])
    y = np.tile(np.arange(4), len(examples))
    centre, scale = x.mean(0), x.std(0) + 1e-6
    z = (x - centre) / scale
    means = np.stack([z[y == k].mean(0) for k in range(4)])
    resid = z - means[y]
    cov = np.cov(resid.T)
    cov = (1 - shrink) * cov + shrink * np.diag(np.diag(cov))
    precision = np.linalg.inv(cov + 1e-3 * np.eye(len(cov)))
    # T1ce against T1: the statistic for (t1ce, t1) and its negative for (t1, t1ce); logistic without bias
    stats = [pair_brighter(e["joint"][2], e["joint"][1]) for e in examples if e["joint"] is not None]
    w = _symmetric_logistic(np.asarray(stats))
    return {
        "centre": centre,
        "scale": scale,
        "means": means,
        "precision": precision,
        "pair_logistic": [w, 0.0],
        "temperature": 1.0,
    }


def _symmetric_logistic(s: np.ndarray, l2: float = 0.1) -> float:
    """w maximising sum log sigmoid(w s) + log sigmoid(w s) over s and -s (labels 1 and 0), L2 on w."""
    w = 1.0
    for _ in range(200):  # Newton on one parameter
        p = 1 / (1 + np.exp(-w * s))
        grad = np.sum((1 - p) * s) - l2 * w
        hess = -np.sum(p * (1 - p) * s * s) - l2
        w -= grad / hess
    return float(w)


def score(example: dict, params: dict) -> list[tuple[tuple[str, ...], tuple[str, ...], float]]:
    """Every order of the example's channels: (true order, identified order, confidence)."""
    import itertools

    feats = np.stack([channel_features(s) for s in example["samples"]])
    joint = example["joint"]
    pair = (
        None
        if joint is None
        else np.array(
            [[pair_brighter(joint[i], joint[j]) if i != j else 0.0 for j in range(4)] for i in range(4)]
        )
    )
    out = []
    for perm in itertools.permutations(range(4)):
        p = list(perm)
        ident = identify_features(feats[p], None if pair is None else pair[np.ix_(p, p)], params)
        out.append((tuple(SEQUENCES[k] for k in perm), ident.order, ident.confidence))
    return out


def to_json(params: dict) -> dict:
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in params.items()}


def evaluate(examples: list[dict]) -> list[dict]:
    rows = []
    for group in sorted({e["group"] for e in examples}):
        params = fit([e for e in examples if e["group"] != group])
        for e in (e for e in examples if e["group"] == group):
            for truth, got, conf in score(e, params):
                rows.append(
                    {"kind": e["kind"], "name": e["name"], "truth": truth, "got": got, "confidence": conf}
                )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        (
            f"| examples | tests | all four right | confident (>= {CONFIDENT:.2f}) | confident and wrong | "
            "right among confident |"
        ),
        "|---|---|---|---|---|---|",
    ]
    for kind in list(dict.fromkeys(r["kind"] for r in rows)) + ["all"]:
        rs = [r for r in rows if kind in ("all", r["kind"])]
        right = sum(r["truth"] == r["got"] for r in rs)
        conf = [r for r in rs if r["confidence"] >= CONFIDENT]
        wrong = sum(r["truth"] != r["got"] for r in conf)
        lines.append(
            f"| {kind} ({len({r['name'] for r in rs})}) | {len(rs)} | {right / len(rs):.1%} | "
            f"{len(conf) / len(rs):.1%} | {wrong} | {(len(conf) - wrong) / max(len(conf), 1):.1%} |"
        )
    lines += ["", "| pair | channels of the two sequences told apart |", "|---|---|"]
    for a in range(4):
        for b in range(a + 1, 4):
            pair = (SEQUENCES[a], SEQUENCES[b])
            ok = n = 0
            for r in rows:
                for t, g in zip(r["truth"], r["got"]):
                    if t in pair:
                        n += 1
                        ok += g == t or g not in pair  # a confusion of this pair: t taken for the other one
            lines.append(f"| {pair[0]} / {pair[1]} | {ok / n:.2%} |")
    mistakes = [r for r in rows if r["truth"] != r["got"]]
    if mistakes:
        lines += ["", "Mistakes (example: true order -> identified, confidence):", ""]
        seen = set()
        for r in sorted(mistakes, key=lambda r: -r["confidence"]):
            if r["name"] in seen:
                continue
            seen.add(r["name"])
            n = sum(m["name"] == r["name"] for m in mistakes)
            lines.append(
                f"- {r['name']}: {n} of 24 orders wrong, e.g. {', '.join(r['truth'])} -> "
                f"{', '.join(r['got'])} ({r['confidence']:.3f})"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--features", type=Path, default=Path("/tmp/medseg3d_sequence_id.npz"))
    parser.add_argument("--write-weights", action="store_true")
    args = parser.parse_args(argv)
    if args.features.exists():
        examples = list(np.load(args.features, allow_pickle=True)["examples"])
    else:
        examples = collect(args.data)
        np.savez(args.features, examples=np.array(examples, dtype=object))
    print(table(evaluate(examples)))
    if args.write_weights:
        target = ROOT / "src" / "medseg3d" / "weights" / "sequence_id.json"
        params = to_json(fit(examples))
        params["fitted_on"] = f"{len(examples)} examples: validation/sequence_id.py --write-weights"
        target.write_text(json.dumps(params, indent=1) + "\n")
        print(f"wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
