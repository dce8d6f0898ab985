"""Do the channels hold the sequences their names say? Names against content (:mod:`.sequence_id`).

Where a channel's modality came from (``Case.meta["sources"]``) decides what a confident content reading
does:

* a name that carries no sequence (``position 2, no modality in the name``, an nnU-Net ``_0001`` taken in
  nnU-Net's BraTS order without ``dataset.json``): the content order is used, said in one line;
* a file, folder or series name that says the sequence: a confident disagreement refuses the case, with the
  evidence and the flags that settle it (``--flair --t1 --t1ce --t2``, or ``--trust-names``);
* a ``--t1ce``-style flag: the user said so; a disagreement is a quality flag, not a refusal.

A reading below :data:`~.sequence_id.CONFIDENT` never changes or refuses anything: where it disagrees with an
assumed order it is a quality flag ("look at it"); names and flags are trusted against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..io import mask_like
from .names import BRATS_MODALITIES, FLAGS
from .sequence_id import Identification, identify, sample_channels


def is_assumed(source: str) -> bool:
    """Whether a channel's identity was assumed, not read from a name: a position, nnU-Net's default order."""
    return source.startswith("position") or "nnU-Net's BraTS order" in source


def identify_channels(arrays: list[np.ndarray], spacings: list) -> Identification | None:
    """The content reading of four channels (any grids), or ``None`` where nothing can be said (too little
    foreground, non-finite values).

    Args:
        arrays: the channels, each (X, Y, Z).
        spacings: each channel's voxel size in mm.

    Returns:
        The Identification (order, confidence, runner-up), or None (not 3D scans, a mask, too little data).
    """
    arrays = [np.asarray(a, dtype=np.float32) for a in arrays]
    if any(a.ndim != 3 or not np.isfinite(a).all() or mask_like(a) for a in arrays):
        return None  # not scans: the channel checks refuse them with what is wrong
    try:
        return identify(*sample_channels(arrays, spacings))
    except ValueError:
        return None


@dataclass
class SequenceCheck:
    """What the content check made of one case.

    Attributes:
        order: given modality -> the modality the channel is used as (the identity where nothing changed).
        lines: what to tell the user (a reordering, a confirmation of an assumed order).
        review: quality flags: a person should look at the result (exit code 3 with ``predict``).
        identification: the content reading, or ``None``.
    """

    order: dict[str, str]
    lines: list[str] = field(default_factory=list)
    review: list[str] = field(default_factory=list)
    identification: Identification | None = None

    @property
    def reordered(self) -> bool:
        """Whether some file is used as another modality than its name said."""
        return any(k != v for k, v in self.order.items())

    def record(self) -> dict | None:
        """What a case's JSON keeps of the check."""
        ident = self.identification
        if ident is None:
            return None
        return {
            "content_order": list(ident.order),
            "confidence": round(ident.confidence, 4),
            "runner_up": [list(ident.runner_up[0]), round(ident.runner_up[1], 4)],
            "used_as": self.order if self.reordered else None,
        }


def check_sequences(
    case_id: str,
    arrays: dict[str, np.ndarray],
    spacings: dict[str, tuple],
    sources: dict[str, str],
    trust_names: bool = False,
) -> SequenceCheck:
    """Check the channels' modalities against their content; see the module docstring for the rules.

    Args:
        case_id: for the messages.
        arrays: modality -> 3D array, the four BraTS modalities (anything else: not checked).
        spacings: modality -> voxel size (mm).
        sources: modality -> how its file was identified (``Case.meta["sources"]``).
        trust_names: a confident disagreement with a name is a quality flag instead of a refusal.

    Returns:
        The :class:`SequenceCheck`; ``order`` maps a given modality to another only where the names carried no
        sequence and the content is confident.

    Raises:
        InputError: names that say a sequence and a content reading that confidently says another.
    """
    given = list(arrays)
    check = SequenceCheck({m: m for m in given})
    if sorted(given) != sorted(BRATS_MODALITIES):
        return check
    ident = identify_channels([arrays[m] for m in given], [spacings[m] for m in given])
    check.identification = ident
    assumed = [m for m in given if is_assumed(sources.get(m, ""))]
    if ident is None:
        if assumed:
            check.review.append(
                f"case {case_id}: the channel order ({', '.join(given)}) was assumed and their "
                "intensities could not confirm it; check which file is which"
            )
        return check
    content = dict(zip(given, ident.order))
    wrong = [m for m in given if content[m] != m]
    evidence = ", ".join(f"{_file(sources, m)} looks like {content[m]}" for m in wrong)
    if not wrong:
        if assumed and ident.confident:
            check.lines.append(
                f"case {case_id}: the assumed channel order {', '.join(given)} agrees with their "
                f"intensities (confidence {ident.confidence:.3f})"
            )
        elif assumed:
            check.review.append(
                f"case {case_id}: the channel order ({', '.join(given)}) was assumed and their "
                f"intensities only weakly confirm it ({ident.describe()}); check which file is which"
            )
        return check
    if not ident.confident:  # names are trusted against a doubtful reading; an assumed order is not
        if any(m in assumed for m in wrong):
            check.review.append(
                f"case {case_id}: the channels may be swapped: by their intensities {evidence} "
                f"({ident.describe()}); check which file is which, or name them with {FLAGS}"
            )
        return check
    flagged = [m for m in wrong if sources.get(m, "").startswith("--")]
    named = [m for m in wrong if m not in flagged and m not in assumed]
    if not named and not flagged:
        check.order = content
        check.lines.append(
            f"case {case_id}: no name says which file is which; by their intensities "
            + ", ".join(f"{_file(sources, m)} is {content[m]}" for m in given)
            + f" (confidence {ident.confidence:.3f}); segmented in that order"
        )
        return check
    if named and not trust_names:
        raise InputError(
            f"case {case_id}: the names say {', '.join(named)} but by their intensities {evidence} "
            f"({ident.describe()}); check the files, or if the names are right say so with {FLAGS} "
            "(one case) or --trust-names"
        )
    check.review.append(
        f"case {case_id}: kept as given ({'flags' if flagged else '--trust-names'}), although by "
        f"their intensities {evidence} ({ident.describe()})"
    )
    return check


def _file(sources: dict[str, str], modality: str) -> str:
    """How a channel is shown in a message: its given modality and, for a position, where it stood."""
    source = sources.get(modality, "")
    if source.startswith("position"):
        return f"the file at {source.split(',')[0]}"
    return f"the {modality} file"


def channel_order_warning(image: np.ndarray, modalities, spacing=(1.0, 1.0, 1.0)) -> str | None:
    """One line when the four channels' content confidently says another order than ``modalities``.

    Args:
        image: ``(C, X, Y, Z)`` with channels in ``modalities`` order, on one grid (as :meth:`Case.load`
            returns it); another number of dimensions gives None.
        modalities: the order the channels are given in.
        spacing: voxel size in mm, (X, Y, Z).

    Returns:
        The line, or None when the given order fits, when the reading is not confident, or when the channels
        are not FLAIR, T1, T1ce and T2.

    Example:
        >>> image, _, _ = case.load(with_label=False)
        >>> channel_order_warning(image[[1, 2, 3, 0]], case.modalities)  # nnU-Net's order read as BraTS's
        "the channels given as flair, t1, t1ce, t2 look like t1, t1ce, t2, flair by their intensities ..."
    """
    if image.ndim != 4:
        return None
    return order_warning(
        [image[i] for i in range(image.shape[0])], tuple(modalities), [spacing] * image.shape[0]
    )


def order_warning(arrays: list[np.ndarray], modalities: tuple[str, ...], spacings=None) -> str | None:
    """:func:`channel_order_warning` for a list of 3D arrays.

    Args:
        arrays: the channels, each (X, Y, Z).
        modalities: the order they are given in.
        spacings: each channel's voxel size in mm (None: 1 mm).
    """
    if sorted(modalities) != sorted(BRATS_MODALITIES):
        return None
    ident = identify_channels(arrays, spacings or [(1.0, 1.0, 1.0)] * len(arrays))
    if ident is None or not ident.confident or list(ident.order) == list(modalities):
        return None
    return (
        f"the channels given as {', '.join(modalities)} look like {', '.join(ident.order)} by their "
        f"intensities (confidence {ident.confidence:.3f}); check which file is which, "
        f"or name them with {FLAGS}"
    )


def check_case_sequences(case, volumes: dict, trust_names: bool = False) -> tuple[dict, SequenceCheck]:
    """:func:`check_sequences` on a case's read channels (modality -> :class:`~medseg3d.io.Volume`).

    Args:
        case: the case (its id, and ``meta["sources"]``: how each channel was identified).
        volumes: {modality: volume} as read.
        trust_names: a confident disagreement with a name is a quality flag instead of a refusal.

    Returns:
        ``(volumes, check)``: the volumes keyed by the modality each is used as (reordered where the names
        carried no sequence and the content is confident; ``case.channels`` and its sources follow), and the
        check.

    Raises:
        InputError: as :func:`check_sequences`.
    """
    sources = case.meta.get("sources", {})
    check = check_sequences(
        case.case_id,
        {m: v.array for m, v in volumes.items()},
        {m: v.spacing for m, v in volumes.items()},
        sources,
        trust_names,
    )
    if not check.reordered:
        return volumes, check
    moved = {check.order[m]: v for m, v in volumes.items()}
    paths = {check.order[m]: p for m, p in case.channels.items()}
    case.channels = {m: paths[m] for m in volumes}
    case.meta["sources"] = {
        check.order[m]: f"intensities, confidence {check.identification.confidence:.3f} "
        f"(given as {m}: {sources.get(m, 'no name')})"
        for m in volumes
    }
    return {m: moved[m] for m in volumes}, check
