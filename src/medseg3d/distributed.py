"""Running on several processes: what a killed process leaves behind, and how the next one clears it.

Outputs are written atomically (``medseg3d.io.write_volume``: a temporary folder ``.NAME.XXXX.tmp`` beside
the target, then a rename), so a process killed mid-write (a preempted Slurm task, an out-of-memory kill)
never leaves a partial ``NAME``, but can leave that temporary folder. The next process that takes the same
case (a rerun of the same shard: shards are disjoint) removes it before deciding whether the case is done.
"""

from __future__ import annotations

import glob
import shutil
from pathlib import Path


def remove_stale_temporaries(target: str | Path) -> list[Path]:
    """Delete the temporaries an interrupted atomic write of ``target`` left beside it: ``.NAME.*.tmp``
    folders or files, for ``target`` and its ``_probabilities`` companion. Returns what was removed.

    Only the process responsible for ``target`` may call this (for ``predict --shard i/n``: the shard
    that owns the case), since a write of ``target`` in progress elsewhere would lose its temporary.
    """
    target = Path(target)
    names = [target.name]
    for suffix in (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr"):
        if target.name.endswith(suffix):
            names.append(target.name[: -len(suffix)] + "_probabilities" + suffix)
            break
    removed = []
    for name in names:
        for path in target.parent.glob(f".{glob.escape(name)}.*.tmp"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed
