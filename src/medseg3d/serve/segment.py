"""The node's segmenter: a study's series -> what ``medseg3d predict MODEL --report`` writes for it."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

OUTPUT_NAME = "segmentation.nii.gz"


class PredictSegmenter:
    """Segments one study with :func:`medseg3d.predict.predict`, the path ``medseg3d predict`` takes: the raw
    pipeline aligns the scans, and a DICOM input gets ``segmentation.seg.dcm`` (a DICOM SEG) beside
    ``segmentation.nii.gz``; with ``report`` also the report files (``segmentation.report.*``).

    The model is loaded once, when the node starts, not per study.

    Args:
        model: bundled name, run folder or model file (as ``medseg3d predict`` takes).
        device: ``auto``, ``cpu``, ``cuda``...
        precision: ``auto``, ``fp32`` or ``mixed``.
        report: also write the case report (the node sends every ``*.dcm`` written, the report's DICOM form
            too).

    Raises:
        MedsegError: the model cannot be found or loaded.
    """

    def __init__(
        self, model: str = "brats", *, device: str = "auto", precision: str = "auto", report: bool = True
    ):
        from ..models import load_model

        self.model = load_model(model, device, precision)
        self.modalities = tuple(self.model.modalities)
        self.report = report

    def __call__(self, channels: dict, out_dir: Path, say) -> list[Path]:
        """Segment the case ``channels`` (modality -> DICOM series folder) into ``out_dir``; returns the
        segmentation's path. predict's own lines (steps, warnings) are given to ``say`` one by one, so the
        node logs them with the study's UID."""
        from ..predict import predict

        # predict prints its lines; they are caught and handed on after it returns (or fails). The worker is
        # the only thread that prints while it runs: the log's handler keeps the stream it was given.
        caught = io.StringIO()
        try:
            with contextlib.redirect_stdout(caught), contextlib.redirect_stderr(caught):
                return predict(
                    self.model,
                    [],
                    Path(out_dir) / OUTPUT_NAME,
                    channel_files=channels,
                    report=self.report,
                    force=True,
                    progress=True,
                )
        finally:
            for line in caught.getvalue().splitlines():
                if line.strip():
                    say(line.strip())
