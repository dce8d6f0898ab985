"""Time ``write_case_report`` (what ``predict --report`` adds per case) on shared cases.

Also prints what location and diameters took inside it (the report's ``seconds``; issue 37 asks <= 1 s).

Uses each case's reference label map as the segmentation, with its four channels, the bundled model's card
and a two-step preprocessing list; reading the files is not timed. Prints wall and CPU seconds per case (3
runs each; the first run of the process also pays matplotlib's start-up) and the medians over the warm runs.

    python benchmarks/report_timing.py [--cases 3] [--out /tmp/reports]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from medseg3d.clinical.report import write_case_report
from medseg3d.io import read_volume
from medseg3d.labels import get_scheme
from medseg3d.models import model_card


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/brats2018")
    )
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--out", help="folder for the reports (default: a temporary one)")
    args = parser.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="medseg3d-report-"))
    out.mkdir(parents=True, exist_ok=True)
    card, scheme = model_card("brats"), get_scheme("brats")
    steps = [{"step": "crop to brain"}, {"step": "z-score per channel", "inside": "brain"}]
    warm, warm_cpu, located = [], [], []
    for case in sorted(p for p in Path(args.data).iterdir() if p.is_dir())[: args.cases]:
        labels = read_volume(case / f"{case.name}_seg.nii.gz")
        channels = {m: read_volume(case / f"{case.name}_{m}.nii.gz") for m in ("flair", "t1", "t1ce", "t2")}
        labels.array, [c.array for c in channels.values()]  # loaded before timing
        times, cpu = [], []
        for _ in range(3):
            start, start_cpu = time.perf_counter(), time.process_time()
            files = write_case_report(labels, channels, scheme, out / case.name, card, steps)
            times.append(time.perf_counter() - start)
            seconds = json.loads(files.json.read_text(encoding="utf-8"))["seconds"]
            located.append(seconds["location"] + seconds["diameters"])
            cpu.append(time.process_time() - start_cpu)
        warm += times[1:]
        warm_cpu += cpu[1:]
        print(
            f"{case.name}: wall "
            + ", ".join(f"{t:.2f}" for t in times)
            + " s; CPU "
            + ", ".join(f"{t:.2f}" for t in cpu)
            + " s"
        )
    # CPU time is what the report costs; wall time also shows how busy the machine was
    print(
        f"median warm: wall {statistics.median(warm):.2f} s, CPU {statistics.median(warm_cpu):.2f} s per "
        f"case; reports in {out}"
    )
    print(
        f"location + diameters: median {statistics.median(located):.2f} s, max {max(located):.2f} s per case"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
