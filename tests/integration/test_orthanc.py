"""The round trip through a real Orthanc (issue 39): the shared raw case uploaded to Orthanc, Orthanc sends it
to ``medseg3d serve``, and the DICOM SEG (readable by highdicom) and the report (an Encapsulated PDF) are
found in Orthanc afterwards. Slow (a real segmentation); skipped where Orthanc is not installed
(``make test-integration`` installs it)."""

from __future__ import annotations

import io

import pytest
from integration.orthanc import Orthanc, orthanc_binary
from serve.helpers import free_port, raw_study, seg_matches_the_nifti, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        orthanc_binary() is None,
        reason="the Orthanc binary is not installed (Debian: apt-get install orthanc; "
        "or run `make test-integration`)",
    ),
]

STUDY = "1.2.826.0.1.3680043.2.1125.39.20"


def test_a_study_sent_from_orthanc_comes_back_into_orthanc_as_a_seg(data_root, tmp_path):
    import highdicom as hd
    import pydicom

    from medseg3d.serve import Node, PredictSegmenter

    node_port = free_port()
    orthanc = Orthanc(
        tmp_path / "orthanc", free_port(), free_port(), {"medseg3d": ("MEDSEG3D", "127.0.0.1", node_port)}
    ).start()
    segmenter = PredictSegmenter("brats", device="cpu", report=True)
    node = Node(
        tmp_path / "spool",
        segmenter,
        send_to=_peer(f"ORTHANC@127.0.0.1:{orthanc.dicom_port}"),
        allow=[("ORTHANC", "127.0.0.1")],
        quiet=2.0,
    )
    try:
        node.start(node_port, "127.0.0.1")
        study_id = orthanc.upload(raw_study(data_root, tmp_path / "study", STUDY))
        orthanc.post("/modalities/medseg3d/store", {"Resources": [study_id], "Synchronous": True})
        seg_ids = wait_for(
            lambda: orthanc.study_instances(study_id, "SEG"), timeout=900, what="the SEG in Orthanc"
        )
        ds = pydicom.dcmread(io.BytesIO(orthanc.instance_file(seg_ids[0])))
        hd.seg.Segmentation.from_dataset(ds)
        labelled, differing = seg_matches_the_nifti(ds, tmp_path / "spool", tmp_path, segmenter.model.scheme)
        assert labelled > 0 and differing == 0
        # the report as a DICOM object (issue 37): an Encapsulated PDF in the same study
        (report_id,) = wait_for(
            lambda: orthanc.study_instances(study_id, "DOC"), timeout=60, what="the report"
        )
        report = pydicom.dcmread(io.BytesIO(orthanc.instance_file(report_id)))
        assert report.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1" and report.StudyInstanceUID == STUDY
        assert bytes(report.EncapsulatedDocument).startswith(b"%PDF")
    finally:
        node.stop(wait=5)
        orthanc.stop()


def _peer(text: str):
    from medseg3d.dicom.net import parse_peer

    return parse_peer(text)
