"""`python -m medseg3d` is the `medseg3d` command; `benchmarks/run.py` leaves tracked files alone unless
asked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import load_script

from medseg3d import __version__

REPO = Path(__file__).resolve().parents[1]


def test_python_dash_m_runs_the_command_line(tmp_path):
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    ok = subprocess.run(
        [sys.executable, "-m", "medseg3d", "--version"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0 and ok.stdout.strip() == f"medseg3d {__version__}"
    bad = subprocess.run(
        [sys.executable, "-m", "medseg3d", "info", str(tmp_path / "missing.nii.gz")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("medseg3d: error: ") and bad.stderr.count("\n") == 1


def _benchmark_module():
    return load_script("run", REPO / "benchmarks")


def test_benchmark_writes_outside_tracked_files_unless_asked(tmp_path):
    bench = _benchmark_module()
    default = bench.build_parser().parse_args([]).out_dir
    assert default == REPO / "runs" / "benchmarks"
    tracked = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "runs/benchmarks"], capture_output=True, text=True, check=True
    ).stdout
    # git will not look past a symbolic link, and some machines keep runs/ elsewhere behind one: then it is
    # the link itself that must be ignored (everything under an ignored path is)
    probe = "runs" if (REPO / "runs").is_symlink() else "runs/benchmarks/results.md"
    ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", probe], check=False)
    assert tracked == "" and ignored.returncode == 0
    assert bench.build_parser().parse_args(["--out", str(tmp_path)]).out_dir == tmp_path
    assert bench.build_parser().parse_args(["--out-dir", "benchmarks"]).out_dir == Path("benchmarks")
