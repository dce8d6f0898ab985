"""The DICOM node (``medseg3d serve``): a Storage SCP that spools studies, segments each complete one and
sends the results back to a PACS.

- :mod:`.spool`: received instances on disk by study, and each study's state (survives a restart);
- :mod:`.usable`: which series can be the MR sequences (localisers, other modalities, derived series left
  out);
- :mod:`.node`: the SCP, study completion, the queue (one study at a time) and sending back with retries;
- :mod:`.segment`: the production segmenter (``medseg3d.predict.predict``).
"""

from .node import Node
from .segment import PredictSegmenter
from .spool import STATUSES, Spool, status_lines

__all__ = ["STATUSES", "Node", "PredictSegmenter", "Spool", "status_lines"]
