"""One run of an experiment on one fold (:class:`Task`): what ``plan`` makes, ``timing`` estimates and
``runner`` trains. Its own module so that ``timing`` can name it without importing ``plan``, which imports
``timing``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .catalogue import Run


@dataclass
class Task:
    """One run on one fold, with its training settings and state."""

    run: Run
    fold: int
    folder: Path
    overrides: dict
    val_ids: list[str]
    state: str = "new"  # new | resume | score | done
