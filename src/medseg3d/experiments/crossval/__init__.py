"""Your cases, your model: planning (``medseg3d plan``), cross-validation (``medseg3d crossval``) and bundling
(``medseg3d bundle``), built on the experiment runner's claims and resume."""

from __future__ import annotations

from .planning import DatasetPlan, format_plan, plan_dataset

__all__ = ["DatasetPlan", "format_plan", "plan_dataset"]
