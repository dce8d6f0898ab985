"""scripts/queue_v2.sh, the resumable queue of issue #22's cross-validation, run with stand-ins for the trainings
and scorers: each fold's extras and ensemble happen once, in the fold, and a second run repeats nothing."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("flock") is None or shutil.which("bash") is None,
                                reason="needs bash and flock")

# crossval.sh's stand-in: the fold FOLDS of OUT trained and scored at once
CROSSVAL = """#!/usr/bin/env bash
set -euo pipefail
out=$3; run="$out/fold$FOLDS"
[[ -e "$run/done" ]] && exit 0
mkdir -p "$run/heldout"; touch "$run/last.safetensors" "$run/done"
echo "train $run" >> calls.log
"""
# medseg3d's stand-in: predict makes its -o folder
MEDSEG3D = """#!/usr/bin/env bash
echo "medseg3d $*" >> calls.log
while [[ $# -gt 0 ]]; do [[ $1 == -o ]] && mkdir -p "$2"; shift; done
"""
# python's stand-in for the two scripts the queue runs
PYTHON = """#!/usr/bin/env bash
echo "python $*" >> calls.log
case "$1" in
  validation/pipeline_robustness.py)
    while [[ $# -gt 0 ]]; do [[ $1 == --json ]] && echo '[{"model": "m"}]' > "$2"; shift; done ;;
  scripts/crossval_ensemble.py)
    while [[ $# -gt 0 ]]; do [[ $1 == --folds ]] && k=$2; shift; done
    mkdir -p "runs/cv27-v1/fold$k/pred-ens-cv27-strong-sw"
    touch "runs/cv27-v1/fold$k/ensemble-cv27-strong.safetensors" "runs/cv27-v1/fold$k/pred-ens-cv27-strong-sw/metrics.csv" ;;
esac
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_queue_does_each_fold_once_and_keeps_its_records_in_the_fold(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "queue_v2.sh", tmp_path / "scripts" / "queue_v2.sh")
    _executable(tmp_path / "scripts" / "crossval.sh", CROSSVAL)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "medseg3d", MEDSEG3D)
    _executable(bin_dir / "python", PYTHON)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "robustness-v1-fold1.json").write_text('[{"model": "old"}]')  # before session 17's layout
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", FINALS="skip")

    def queue():
        subprocess.run(["bash", "scripts/queue_v2.sh", "data", "split.json", "1", "2"], cwd=tmp_path, env=env,
                       check=True, capture_output=True, text=True, timeout=60)
        return (tmp_path / "calls.log").read_text().splitlines()

    calls = queue()
    for k in (1, 2):
        for cv in ("cv27-v1", "cv27-strong"):
            fold = tmp_path / "runs" / cv / f"fold{k}"
            assert (fold / "robustness.json").is_file() and (fold / "pred-last-sw-prob" / "done").is_file()
        assert (tmp_path / f"runs/cv27-v1/fold{k}/robustness-ens-cv27-strong-sw.json").is_file()
        assert sum(f"crossval_ensemble.py runs/cv27-v1 runs/cv27-strong --folds {k} --windows" in c for c in calls) == 1
        ens_rows = [c for c in calls if f"fold{k}/ensemble-cv27-strong.safetensors --sliding-window --json" in c]
        assert len(ens_rows) == 1  # the ensemble on the other pipeline's case, in windows, once
    # the old-layout rows moved into the fold, not computed again
    assert (tmp_path / "runs/cv27-v1/fold1/robustness.json").read_text() == '[{"model": "old"}]'
    assert not (tmp_path / "runs" / "robustness-v1-fold1.json").exists()
    assert not any("pipeline_robustness.py runs/cv27-v1/fold1/last.safetensors" in c for c in calls)
    assert sum(c.startswith("train ") for c in calls) == 4
    # a second run (after a stop): everything is there, nothing is done again
    assert queue() == calls
