"""The timing loop the per-case benchmarks share: every variant segments the same cases in one process,
interleaved (so that all see the same machine load), after a warm-up round that is not counted."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from medseg3d.io import read_volume


def interleaved_seconds(
    cases, modalities, variants: dict[str, Callable], repeats: int
) -> dict[str, list[float]]:
    """Seconds of each variant on each case, ``repeats`` rounds after one warm-up round.

    Args:
        cases: :class:`~medseg3d.datasets.Case` objects; their channels are read before timing, once per
            round.
        modalities: the channels' order.
        variants: name -> ``fn(image, affine, case, repeat)``, timed around the call (``repeat`` 0 is the
            warm-up).
        repeats: counted rounds.
    """
    times: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(repeats + 1):
        for case in cases:
            vols = [read_volume(case.channels[m]) for m in modalities]
            image, affine = np.stack([v.array for v in vols]).astype(np.float32), vols[0].affine
            for name, fn in variants.items():
                t0 = time.perf_counter()
                fn(image, affine, case, repeat)
                if repeat:
                    times[name].append(time.perf_counter() - t0)
    return times
