"""Where one case's seconds go in a fresh process (issue #22): imports, loading the model, reading, segmenting
(first and second call in windows, then the whole volume in one pass), writing; then the first segmentation's
profile (cumulative). The imports are timed, so they happen inside ``main``.

    MEDSEG3D_THREADS=2 python benchmarks/single_case_phases.py [CASE] [--model brats] [--top 45]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = Path(__file__).resolve().parents[1].parent / "shared/data/brats2018/Brats18_2013_20_1"
    parser.add_argument("case", nargs="?", default=str(default))
    parser.add_argument(
        "--model", default="brats", help="bundled name, run folder or model file (an ensemble too)"
    )
    parser.add_argument("--top", type=int, default=45, help="profile lines to print")
    args = parser.parse_args(argv)
    marks = [("start", time.perf_counter())]
    import torch  # noqa: F401 (timed)

    marks.append(("import torch", time.perf_counter()))
    from medseg3d import predict as P
    from medseg3d.datasets import resolve_case_channels
    from medseg3d.io import write_volume
    from medseg3d.models import load_model

    marks.append(("import medseg3d", time.perf_counter()))
    model = load_model(args.model, "cpu")
    marks.append(("load the model", time.perf_counter()))
    case, _ = resolve_case_channels([Path(args.case)], model.modalities)
    volumes = {name: vol for name, _, vol in case.read_channels()}
    marks.append(("read the channels", time.perf_counter()))
    import cProfile
    import pstats

    profile = cProfile.Profile()
    profile.enable()
    result = P.segment_volumes(model, volumes)
    profile.disable()
    marks.append(("segment, first call (the model's default)", time.perf_counter()))
    write_volume(result.labels, Path(tempfile.mkdtemp()) / "labels.nii.gz")
    marks.append(("write the labels", time.perf_counter()))
    P.segment_volumes(model, volumes)
    marks.append(("segment again (the model's default)", time.perf_counter()))
    P.segment_volumes(model, volumes, sliding_window=False)
    marks.append(("segment again (whole volume)", time.perf_counter()))
    for (_, before), (name, after) in itertools.pairwise(marks):
        print(f"{name:<50} {after - before:6.2f} s")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
