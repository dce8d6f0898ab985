"""Dataset layouts, cases and splits.

A :class:`Case` is one subject: an ordered list of channel files (one per modality) and an optional label
file. :func:`find_cases` recognises these layouts (auto-detected, or named with ``layout=``):

* ``brats``: case folders whose files are named by modality, ``<case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz``
  (BraTS 2017-2021), BraTS 2023+ ``<case>-{t2f,t1n,t1c,t2w,seg}.nii.gz``, clinical names (``flair.nii.gz``,
  ``t1_post.nrrd``, ``post_gd.nii.gz``, see :func:`identify_name`), in NIfTI or NRRD; or one DICOM series
  sub-folder per modality (named so, or with a SeriesDescription that says it). The root may also be a
  single case folder, and cases may be nested in ``HGG/`` and ``LGG/``.
* ``brats-mha``: BRATS 2012-2015 MetaImage files, both the flat 2012 naming
  (``BRATS_HG0015_{FLAIR,T1,T1C,T2,truth}.mha``, or any modality name such as ``_t1ce.mha``) and the 2015
  nesting ``HGG|LGG/<patient>/VSD.Brain.XX.O.MR_Flair.<id>/VSD.Brain.XX.O.MR_Flair.<id>.mha`` with the label
  in ``VSD.Brain_3more.XX.O.OT.<id>/``.
* ``nnunet``: nnU-Net / Medical Segmentation Decathlon ``imagesTr/labelsTr/imagesTs`` + ``dataset.json``,
  channel files ``{case}_{XXXX}.nii.gz``; or an ``imagesTs``-like folder given alone (its ``dataset.json`` is
  looked for in the folder above; without one, four channels are taken in nnU-Net's BraTS order T1, T1ce, T2,
  FLAIR, and the case says so in ``meta["note"]``). Labels renumbered by nnU-Net's BraTS conversions (1 edema,
  2 NCR/NET, 3 enhancing) are read back as BraTS values (:func:`brats_label_map`).
* ``csv``: a CSV file with a ``case`` column, one column per channel and an optional ``label`` column
  (relative paths are relative to the CSV's folder).

Channels are always in an explicit order; the paper's order is FLAIR, T1, T1c, T2 (``BRATS_MODALITIES``).
Any subset can be chosen with ``modalities=``. A case folder whose files cannot be told apart (two files
for one modality, an image file whose name says nothing) is found but refused when loaded, and reported by
:func:`check_case`; never resolved by directory order. :func:`resolve_case_channels` turns what a user gives
for one case (a folder, a list of files, ``--flair``-style overrides) into a case and lines saying how each
channel was identified.

One module per concept: :mod:`~medseg3d.datasets.names` (what a file name or DICOM description says),
:mod:`~medseg3d.datasets.case` (:class:`Case`, loading and :func:`check_case`),
:mod:`~medseg3d.datasets.dataset_json` (nnU-Net/MSD ``dataset.json``), :mod:`~medseg3d.datasets.layouts`
(:func:`find_cases`), :mod:`~medseg3d.datasets.channel_order`, :mod:`~medseg3d.datasets.resolve`
(:func:`resolve_case_channels`) and :mod:`~medseg3d.datasets.splits`.
"""

from .case import (
    Case,
    apply_label_map,
    check_case,
)
from .channel_order import (
    SequenceCheck,
    channel_order_warning,
    check_case_sequences,
    check_sequences,
)
from .dataset_json import (
    brats_label_map,
    dataset_labels,
)
from .layouts import (
    LAYOUTS,
    detect_layout,
    find_cases,
    layout_notes,
)
from .names import (
    BRATS_MODALITIES,
    FLAGS,
    NNUNET_BRATS_ORDER,
    identify_name,
    normalise_modalities,
)
from .resolve import (
    resolve_case_channels,
)
from .splits import (
    fold_ids,
    load_split,
    make_split,
    save_split,
)

__all__ = [
    "BRATS_MODALITIES",
    "FLAGS",
    "LAYOUTS",
    "NNUNET_BRATS_ORDER",
    "Case",
    "SequenceCheck",
    "apply_label_map",
    "brats_label_map",
    "channel_order_warning",
    "check_case",
    "check_case_sequences",
    "check_sequences",
    "dataset_labels",
    "detect_layout",
    "find_cases",
    "fold_ids",
    "identify_name",
    "layout_notes",
    "load_split",
    "make_split",
    "normalise_modalities",
    "resolve_case_channels",
    "save_split",
]
