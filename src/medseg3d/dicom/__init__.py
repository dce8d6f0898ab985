"""DICOM in and out.

- :mod:`.series`: cheap questions about DICOM series folders (is this a series, what is its description),
  asked while a case folder's channels are identified.
- :mod:`.seg`: the DICOM Segmentation object written beside a segmentation of a DICOM input, and read back.

``seg`` imports highdicom, which is slow to import; it is not imported here, so that finding cases stays fast.
"""

from .series import looks_like_dicom_series, series_description

__all__ = ["looks_like_dicom_series", "series_description"]
