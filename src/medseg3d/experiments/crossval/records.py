"""What a ``medseg3d crossval`` folder records about itself (``crossval.json``) and the names of its
variants."""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import InputError

RECORD = "crossval.json"
# the variant scored exactly as the final model runs (``pred-final``); ``final-pp`` post-processed
FINAL = "final"
# the same with the 8 mirrored passes averaged (``pred-final-mirror``), a candidate of the nested choice
MIRRORED = f"{FINAL}-mirror"


def read_crossval_record(out) -> dict | None:
    """``RUN/crossval.json``, or ``None`` for a folder without one (e.g. v2's kept records)."""
    path = Path(out) / RECORD
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable ({exc}); restore it or choose another --out") from exc
