"""Argument types and option groups that several commands share."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def positive_triple(cast, kind: str, example: str):
    """An argparse type: three positive comma-separated values (sizes or spacings), e.g. 96,96,96.

    Args:
        cast: the type of each value (int or float).
        kind, example: what the values are and an example, for the error message.

    Returns:
        The parser: text -> a tuple of three values; it raises argparse.ArgumentTypeError on anything else.
    """

    def parse(text: str) -> tuple:
        try:
            values = tuple(cast(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind} like {example}, got {text!r}"
            ) from None
        if len(values) != 3 or min(values) <= 0:
            raise argparse.ArgumentTypeError(f"expected three positive {kind} like {example}, got {text!r}")
        return values

    return parse


positive_ints = positive_triple(int, "integers", "96,96,96")


positive_floats = positive_triple(float, "numbers", "2,2,2")


def shard(text: str) -> tuple[int, int]:
    """An argparse type: ``INDEX/COUNT`` (e.g. 0/4) -> (index, count); argparse.ArgumentTypeError
    otherwise."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected INDEX/COUNT like 0/4, got {text!r}") from None
    return i, n


def passes(text: str) -> int | str:
    """``--uncertainty`` / ``--passes``: 2, 4 or 8 mirrored passes, ``members`` (an ensemble's), or ``auto``
    (``--uncertainty`` without a number; argparse passes its string constant through here too)."""
    if text in ("members", "auto"):
        return text
    if text in ("2", "4", "8"):
        return int(text)
    raise argparse.ArgumentTypeError(
        f"expected 2, 4 or 8 mirrored passes, or 'members' for an ensemble, got {text!r}"
    )


def region_volumes(text: str) -> dict[str, float]:
    """``WT=1000,TC=200,ET=100`` -> ``{"WT": 1000.0, ...}`` (mm^3); ``0`` or ``none`` -> ``{}`` (off)."""
    if text.strip().lower() in ("0", "none", "off"):
        return {}
    out = {}
    for part in text.split(","):
        region, sep, value = part.partition("=")
        try:
            out[region.strip().upper()] = float(value)
        except ValueError:
            sep = ""
        if not sep or region.strip().upper() not in ("WT", "TC", "ET"):
            raise argparse.ArgumentTypeError(
                f"expected REGION=MM3 pairs of WT, TC, ET (e.g. WT=1000,ET=100), got {text!r}"
            )
    return out


def kv(text: str) -> tuple[str, object]:
    """An argparse type: ``KEY=VALUE`` -> (key, value), the value parsed as JSON where it is JSON, else a
    string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE like base_channels=16, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def channel_flags(args) -> dict:
    """The channel files named by ``--flair``/``--t1``/``--t1ce``/``--t2``, as {modality: path}, the unset
    left out."""
    return {m: getattr(args, m) for m in ("flair", "t1", "t1ce", "t2") if getattr(args, m, None)}


def add_template_fit(s) -> None:
    """Add ``--template-fit`` (rigid or affine alignment of raw scans to the template) to a sub-parser."""
    s.add_argument(
        "--template-fit",
        choices=["rigid", "affine"],
        default=None,
        help="raw scans: how the brain is aligned to the BraTS template. rigid (default): keeps its size, "
        "as BraTS data do; affine: scales and shears it to the template's",
    )


def add_channel_flags(s) -> None:
    """Add ``--flair``, ``--t1``, ``--t1ce``, ``--t2`` (a channel's file where names do not tell) to a
    sub-parser."""
    for m in ("flair", "t1", "t1ce", "t2"):
        s.add_argument(
            f"--{m}", metavar="FILE", help=f"the {m.upper()} file or DICOM folder (where names do not tell)"
        )


def new_model_file(path: str, force: bool, what: str) -> Path:
    """The ``.safetensors`` file a command writes a model to.

    Args:
        path: the file named on the command line.
        force: whether an existing file may be overwritten (``--force``).
        what: what the file holds, for the error message (e.g. "ensemble").

    Returns:
        The path.

    Raises:
        InputError: the name does not end in ``.safetensors``, or the file exists and ``force`` is False.
    """
    from ..errors import InputError

    out = Path(path)
    if out.suffix != ".safetensors":
        raise InputError(f"{out}: name the {what} file .safetensors")
    if out.exists() and not force:
        raise InputError(f"{out}: exists already; add --force to overwrite it")
    return out
