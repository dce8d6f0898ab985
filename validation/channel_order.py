"""How well the channel order check (``medseg3d.datasets.channel_order_warning``) tells a wrong order.

    python validation/channel_order.py [--dataset ../shared/data/brats2018] [--extra CASE_FOLDER ...]

For every case of the dataset, the correlations between its channels inside the brain are scored against
the mean and spread of the OTHER cases (leave one out), for the given order and for each of the 23 wrong
orders of FLAIR, T1, T1ce, T2. Prints, per wrong order, the fraction of cases flagged at the threshold the
package uses, and for the right order the largest excess seen (a false alarm needs it above the threshold).
``--extra`` adds case folders from other pipelines, scored against all dataset cases (e.g. the shared
``raw_clinical/TCGA-FG-6692/brainles_sri24``). Writes nothing. About a minute for 27 cases on 2 cores.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

from medseg3d.datasets import BRATS_MODALITIES, CHANNEL_ORDER_THRESHOLD, find_cases


def case_correlation(case) -> np.ndarray:
    image, _, _ = case.select(BRATS_MODALITIES).load(with_label=False)
    sub = [image[i, ::2, ::2, ::2] for i in range(4)]
    brain = np.logical_and.reduce([s != 0 for s in sub])
    return np.corrcoef(np.stack([s[brain] for s in sub]).astype(np.float64))


def misfit(corr, mean, sd, order) -> float:
    return sum(((corr[i, j] - mean[order[i], order[j]]) / (sd[order[i], order[j]] + 0.05)) ** 2
               for i in range(4) for j in range(i + 1, 4))


def excess(corr, mean, sd) -> float:
    """How much better the best order fits than the given one (0: the given order fits best)."""
    return misfit(corr, mean, sd, (0, 1, 2, 3)) - min(misfit(corr, mean, sd, p) for p in itertools.permutations(range(4)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "brats2018"))
    parser.add_argument("--extra", nargs="*", default=[])
    args = parser.parse_args(argv)
    cases = find_cases(args.dataset)
    corr = {c.case_id: case_correlation(c) for c in cases}
    extra = {Path(f).name: case_correlation(find_cases(f)[0]) for f in args.extra}
    ids = list(corr)
    perms = [p for p in itertools.permutations(range(4)) if p != (0, 1, 2, 3)]
    results = {p: [] for p in [(0, 1, 2, 3)] + perms}
    for key, c in list(corr.items()) + list(extra.items()):
        others = np.stack([corr[k] for k in ids if k != key])
        mean, sd = others.mean(0), others.std(0)
        for p, values in results.items():
            values.append(excess(c[np.ix_(p, p)], mean, sd))
    right = np.array(results[(0, 1, 2, 3)])
    print(f"{len(ids)} cases (+{len(extra)} from other pipelines), threshold {CHANNEL_ORDER_THRESHOLD}")
    print(f"right order: largest excess {right.max():.2f}, false alarms {(right > CHANNEL_ORDER_THRESHOLD).sum()}")
    print("wrong order (the files taken as flair, t1, t1ce, t2 hold ...): flagged fraction, smallest excess")
    for p in sorted(perms, key=lambda p: -np.mean(np.array(results[p]) > CHANNEL_ORDER_THRESHOLD)):
        v = np.array(results[p])
        print(f"  {', '.join(BRATS_MODALITIES[i] for i in p):24s} {np.mean(v > CHANNEL_ORDER_THRESHOLD):5.2f}  {v.min():6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
