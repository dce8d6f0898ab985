"""Your cases, your model: planning (``medseg3d plan``), cross-validation (``medseg3d crossval``) and bundling
(``medseg3d bundle``), built on the experiment runner's claims and resume."""

from __future__ import annotations

from ..planning import DatasetPlan, format_plan, plan_dataset
from .bundle import bundle, card_scores
from .records import read_crossval_record
from .report import write_crossval_report
from .run import run_crossval, setup

__all__ = [
    "DatasetPlan",
    "bundle",
    "card_scores",
    "format_plan",
    "plan_dataset",
    "read_crossval_record",
    "run_crossval",
    "setup",
    "write_crossval_report",
]
