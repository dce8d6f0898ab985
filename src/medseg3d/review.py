"""Quality checks that ask a person to look at a written result, and the exit codes they lead to.

The contract of ``medseg3d predict`` (README, ``medseg3d predict --help``):

* :data:`EXIT_OK` (0): every output written, and no quality check fired: the result can be trusted as far as
  the tool can tell;
* :data:`EXIT_REVIEW` (3): every output written, but a quality check fired for at least one case (channels
  that look swapped, brain outside a scan's field of view, a registration or skull stripping that looks
  wrong, tumour cut by the brain mask, low confidence): look at those cases; the case's JSON lists the
  checks under ``"checks"``;
* :data:`EXIT_REFUSED` (2): the input or an option was refused (one ``medseg3d: error:`` line on standard
  error), nothing written for the refused case; ``--strict`` refuses a case whose checks fire, before
  anything of it is written;
* 1: anything else (a bug: please report it).

Checks fire through :func:`fire`, which prints ``warning: ...`` on standard error and records the check in
every :func:`collecting` block that is open (the CLI opens one per command).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import asdict, dataclass

EXIT_OK = 0
EXIT_REFUSED = 2
EXIT_REVIEW = 3

# what each check is called in the JSON, by the words of its warning (raw/qc.py, datasets/channel_order.py)
_NAMES = (
    ("swapped", "sequences"),
    ("channel order", "sequences"),
    ("intensities", "sequences"),
    ("field of view", "field_of_view"),
    ("fits the template poorly", "registration"),
    ("brain volume", "skull_strip"),
    ("outside the brain mask", "tumour_outside_brain"),
    ("edge of the brain mask", "tumour_cut_by_mask"),
    ("confidence", "low_confidence"),
)


@dataclass(frozen=True)
class Check:
    """One quality check that fired: the case, the check's name (:func:`check_name`) and its message."""

    case: str
    name: str
    message: str

    def to_dict(self) -> dict:
        """The check as a JSON-ready dict (case, name, message)."""
        return asdict(self)


def check_name(message: str) -> str:
    """The name of the check a warning comes from (``"field_of_view"``, ``"sequences"``...), ``"other"``."""
    text = message.lower()
    return next((name for words, name in _NAMES if words in text), "other")


_open: list[list[Check]] = []


@contextlib.contextmanager
def collecting():
    """Collect the checks fired inside the block: ``with collecting() as checks: ...``."""
    checks: list[Check] = []
    _open.append(checks)
    try:
        yield checks
    finally:  # by identity: two lists of the same checks are equal
        del _open[next(i for i, c in enumerate(_open) if c is checks)]


def fire(case: str, message: str, *, show: bool = True) -> Check:
    """Record that a quality check fired for ``case``; print ``warning: <message>`` on standard error.

    Args:
        case: the case it fired for.
        message: the one-line warning.
        show: whether to print it.

    Returns:
        The Check, also added to every open :func:`collecting` list.
    """
    check = Check(case, check_name(message), message)
    for checks in _open:
        checks.append(check)
    if show:
        print(f"warning: {message}", file=sys.stderr, flush=True)
    return check
