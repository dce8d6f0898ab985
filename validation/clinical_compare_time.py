"""How long ``medseg3d compare`` takes on two raw DICOM studies, from the command line as a user runs it.

One shared BraTS case is made raw twice by the project's simulator (two seeds: each study on its own oblique
grids, thick slices, motion and intensities) and written as two DICOM studies, one series per sequence with
scanner-style series descriptions. ``medseg3d compare PRIOR CURRENT -o OUT`` then runs in a fresh process; its
wall time, its CPU time (user + system, children included) and the machine's load average are printed as JSON.

    nice -n 10 python validation/clinical_compare_time.py --work /tmp/compare_time
    nice -n 10 python validation/clinical_compare_time.py --diameters   # case_diameters on the 27 references
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERIES = {
    "flair": "AX_FLAIR|Ax T2 FLAIR",
    "t1": "T1_SE|Ax T1 SE",
    "t1ce": "T1_POST|Ax T1 +C MPRAGE",
    "t2": "T2_TSE|Ax T2 TSE",
}


def make_studies(data: Path, work: Path, case_name: str) -> tuple[Path, Path]:
    sys.path.insert(0, str(REPO / "tests"))
    from layouts import write_dicom_case  # the tests' DICOM writer: the tags a series reader needs

    from medseg3d.datasets import find_cases
    from medseg3d.raw.simulate import simulate

    case = next(c for c in find_cases(data / "brats2018") if c.case_id == case_name)
    vols = {m: v for m, _, v in case.select(("flair", "t1", "t1ce", "t2")).read_channels()}
    out = []
    for name, seed in (("prior", 11), ("current", 12)):
        folder = work / name
        if not folder.is_dir():
            sim = simulate(vols, None, seed=seed)
            write_dicom_case(sim.volumes, folder, SERIES)
        out.append(folder)
    return out[0], out[1]


def time_diameters(data: Path) -> None:
    """Seconds of :func:`medseg3d.clinical.diameters.case_diameters` (WT, TC, ET, every lesion) per
    reference."""
    import numpy as np

    from medseg3d.clinical.diameters import case_diameters
    from medseg3d.datasets import find_cases
    from medseg3d.io import read_volume
    from medseg3d.labels import get_scheme

    seconds, cpu = [], []  # wall and CPU time: on a shared machine the CPU time is what the code costs
    for case in find_cases(data / "brats2018"):
        label = read_volume(case.label)
        t0, c0 = time.perf_counter(), time.process_time()
        case_diameters(label.array, label.affine, get_scheme("brats"))
        seconds.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(
        json.dumps(
            {
                "cases": len(seconds),
                "median_seconds": round(float(np.median(seconds)), 2),
                "max_seconds": round(max(seconds), 2),
                "median_cpu_seconds": round(float(np.median(cpu)), 2),
                "max_cpu_seconds": round(max(cpu), 2),
                "load_average_1min": round(os.getloadavg()[0], 1),
            }
        )
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--work", type=Path, default=Path("/tmp/compare_time"))
    p.add_argument("--case", default="Brats18_2013_20_1")
    p.add_argument("--diameters", action="store_true", help="time case_diameters on the references instead")
    args = p.parse_args(argv)
    if args.diameters:
        time_diameters(args.data)
        return
    prior, current = make_studies(args.data, args.work, args.case)
    out = args.work / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "medseg3d", "compare", str(prior), str(current), "-o", str(out)],
        check=True,
        env=env,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    record = json.loads((out / "compare.json").read_text())
    print(
        json.dumps(
            {
                "wall_seconds": round(wall, 1),
                "cpu_seconds": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
                "load_average_1min_before_after": [round(load[0], 1), round(os.getloadavg()[0], 1)],
                "cores": os.cpu_count(),
                "compare_seconds": record["seconds"],
                "rano_2010": record["response"]["rano_2010"]["category"],
                "rano_2_volumetric": record["response"]["rano_2_volumetric"]["category"],
                "volumes_ml": {r: v["volume_ml"] for r, v in record["regions"].items()},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
