"""What one prediction is asked to do: one frozen object, built and checked once.

The command line (``medseg3d predict``) and the Python API (:func:`~medseg3d.predict.segment`,
:func:`~medseg3d.predict.predict`) build a :class:`PredictOptions`; :meth:`PredictOptions.resolve` fills in
the model's own defaults (far-component distance, sliding windows, uncertainty passes) and refuses impossible
settings in one line each, before minutes of alignment and inference. Everything downstream takes the resolved
object and checks nothing again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..errors import InputError
from ..postprocess import check_options, voxels_for_volume
from ..raw.pipeline import MODES as ALIGN_MODES
from ..uncertainty import MEMBERS, check_passes

if TYPE_CHECKING:
    from ..models import LoadedModel

Passes = int | Literal["members", "auto"] | None
"""Uncertainty passes: 2, 4 or 8 mirrored passes, ``"members"`` (an ensemble's members), ``"auto"`` (members
for an ensemble, else 2 passes, 8 with mirroring) or None (no uncertainty)."""

SPACES = ("native", "atlas")
OUTPUT_FORMATS = (None, "nifti", "dicom-seg")


@dataclass(frozen=True)
class PredictOptions:
    """How to segment a case (the same for every case of a dataset).

    Attributes:
        mirror: average the 8 mirrored passes (``--mirror``, formerly ``--tta``; ``--no-mirror``: one pass);
            None: as the model file says (``inference.mirror``, set where cross-validation chose it), else
            one pass.
        sliding_window: run in windows of the model's patch; None: as the model file says.
        overlap: windows' overlap in [0, 1); None: the model file's (else 0.5).
        min_component: remove tumour components smaller than this many voxels (0: off).
        min_enhancing: below this many enhancing voxels, enhancing tumour becomes core (0: off); None: the
            model file's ``min_enhancing_mm3``, turned into voxels on each grid.
        min_enhancing_mm3: the same threshold as a volume (mm^3); resolved from the model file unless
            ``min_enhancing`` is given.
        min_lesion: region (WT, TC, ET) -> mm^3: components of a region smaller than that become the next
            outer region (:func:`medseg3d.postprocess.demote_small_region_components`); None: the model
            file's ``min_lesion_mm3``; ``{}``: off.
        max_distance: remove tumour components farther than this (mm) from the largest one; 0: off; None: the
            model file's choice.
        align: how raw scans reach the model's grid (``--align``): ``auto``, ``full``, ``resample`` or
            ``none`` (:mod:`medseg3d.raw.pipeline`).
        space: ``native`` (labels on the reference scan's grid) or ``atlas`` (on the model's grid, after
            ``full``).
        uncertainty: see :data:`Passes`.
        template_fit: ``rigid`` or ``affine`` map of the brain to the template in ``full``; None: rigid.
        trust_names: where file names and the channels' content confidently disagree about the sequences,
            segment as named and flag the case for review, instead of refusing it (``--trust-names``).
        strict: a case whose quality checks fire (:mod:`medseg3d.review`) is refused before anything of it is
            written, instead of written and flagged for review (``--strict``).
    """

    mirror: bool | None = None
    sliding_window: bool | None = None
    overlap: float | None = None
    min_component: int = 0
    min_enhancing: int | None = None
    min_enhancing_mm3: float = 0.0
    min_lesion: dict | None = None
    max_distance: float | None = None
    align: str = "auto"
    space: str = "native"
    uncertainty: Passes = None
    template_fit: str | None = None
    trust_names: bool = False
    strict: bool = False
    resolved: bool = dataclasses.field(default=False, compare=False)

    @classmethod
    def of(cls, options: PredictOptions | None = None, **given) -> PredictOptions:
        """``options`` with the keyword arguments given replacing its fields.

        Args:
            options: the options to start from (None: the defaults).
            given: fields to replace (``preprocess`` is the old name of ``align``); None values of keywords
                that default to None are kept as given.

        Raises:
            InputError: an unknown option name.
        """
        if "preprocess" in given:
            given["align"] = given.pop("preprocess")
        names = {f.name for f in dataclasses.fields(cls)} - {"resolved"}
        unknown = sorted(set(given) - names)
        if unknown:
            raise InputError(
                f"unknown prediction option {', '.join(unknown)}; known: {', '.join(sorted(names))}"
            )
        base = options or cls()
        return dataclasses.replace(base, resolved=False, **given) if given else base

    def resolve(self, model: LoadedModel) -> PredictOptions:
        """These options with ``model``'s defaults filled in, checked once.

        Returns:
            A resolved copy: ``mirror`` is a bool, ``max_distance``, ``sliding_window`` and ``overlap`` are
            numbers, ``uncertainty`` is a number of passes, ``"members"`` or None. A resolved object is
            returned as it is.

        Raises:
            InputError: an option out of range, or one that this model cannot take (one line each).
        """
        if self.resolved:
            return self
        if self.align not in ALIGN_MODES:
            raise InputError(f"--align must be one of {', '.join(ALIGN_MODES)}, got {self.align!r}")
        if self.space not in SPACES:
            raise InputError(f"--space must be 'native' or 'atlas', got {self.space!r}")
        max_distance = model.max_distance(self.max_distance)
        enhancing_mm3 = self.min_enhancing_mm3 or model.min_enhancing_mm3(self.min_enhancing)
        min_enhancing = self.min_enhancing or 0
        min_lesion = model.min_lesion_mm3() if self.min_lesion is None else dict(self.min_lesion)
        check_options(
            model.scheme, self.min_component, min_enhancing, max_distance, enhancing_mm3, min_lesion
        )
        sliding_window, overlap = model.inference_settings(self.sliding_window, self.overlap)
        mirror = model.mirror(self.mirror)
        passes = self.uncertainty
        if passes in (0, "auto"):
            passes = MEMBERS if model.runnable_members > 1 else (8 if mirror else 2)
        check_passes(passes, mirror, model.runnable_members)
        return dataclasses.replace(
            self,
            mirror=mirror,
            max_distance=max_distance,
            min_enhancing=min_enhancing,
            min_enhancing_mm3=enhancing_mm3,
            min_lesion=min_lesion,
            sliding_window=sliding_window,
            overlap=overlap,
            uncertainty=passes,
            resolved=True,
        )

    def postprocessing(self, spacing) -> dict:
        """The keyword arguments of :func:`~medseg3d.predict.probabilities_to_labels` on a grid of
        ``spacing``."""
        min_enhancing = self.min_enhancing or 0
        if not min_enhancing and self.min_enhancing_mm3 > 0 and spacing is not None:
            min_enhancing = voxels_for_volume(self.min_enhancing_mm3, spacing)
        min_lesion = None
        if self.min_lesion and spacing is not None:
            min_lesion = {region: voxels_for_volume(mm3, spacing) for region, mm3 in self.min_lesion.items()}
        return dict(
            min_component=self.min_component,
            min_enhancing=min_enhancing,
            spacing=spacing,
            max_distance=self.max_distance or 0.0,
            min_lesion=min_lesion,
        )


def check_output_format(output_format: str | None, space: str) -> None:
    """Refuse an output format that is unknown or cannot be written with ``space``, in one line.

    Args:
        output_format: "nifti", "dicom-seg", or None (the default: dicom-seg for a DICOM input).
        space: the output's space ("native" or "atlas"); dicom-seg needs the input series' grid.

    Raises:
        InputError: as said.
    """
    if output_format not in OUTPUT_FORMATS:
        raise InputError(f"--output-format must be nifti or dicom-seg, got {output_format!r}")
    if output_format == "dicom-seg" and space == "atlas":
        raise InputError(
            "--output-format dicom-seg needs the labels on the input series' grid; leave out --space atlas"
        )
