"""The node with the real segmenter, a pynetdicom peer as the PACS: a study goes in, a DICOM SEG readable by
highdicom comes back, equal voxel for voxel to the segmentation the node wrote."""

from __future__ import annotations

import pydicom
import pytest

from medseg3d.dicom.net import send_files

from .helpers import raw_study, seg_matches_the_nifti, wait_for

pytest.importorskip("highdicom")

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


def _round_trip(tmp_path, nodes, pacs, study, model: str, timeout: float, caplog):
    from medseg3d.serve import PredictSegmenter

    segmenter = PredictSegmenter(model, device="cpu", precision="fp32", report=False)
    _, address = nodes(tmp_path / "spool", segmenter, send_to=pacs.address)
    assert not send_files([study], address).refused
    with caplog.at_level("INFO", logger="medseg3d.serve"):
        wait_for(lambda: pacs.received, timeout=timeout, what="the SEG at the peer")
    uid = str(pydicom.dcmread(next(study.rglob("*.dcm")), stop_before_pixels=True).StudyInstanceUID)
    # predict's own lines are in the node's log, under the study's UID
    assert any(r.getMessage().startswith(f"study {uid}: wrote ") for r in caplog.records)
    (seg,) = pacs.received
    assert seg.SOPClassUID == SEG_STORAGE
    labelled, differing = seg_matches_the_nifti(seg, tmp_path / "spool", tmp_path, segmenter.model.scheme)
    assert labelled > 0 and differing == 0


def test_a_small_dicom_study_comes_back_as_a_seg_of_the_real_segmentation(
    brats_root, tmp_path, nodes, pacs, caplog
):
    from layouts import crop_case, write_dicom_case

    # 20 slices through the tumour (80 instances): sending takes most of the time here, not segmenting
    box = (slice(96, 160), slice(64, 128), slice(80, 100))
    study = write_dicom_case(
        crop_case(brats_root, "Brats18_2013_20_1", box),
        tmp_path / "study",
        {"flair": "S1|AX FLAIR", "t1": "S2|AX T1", "t1ce": "S3|AX T1 POST", "t2": "S4|AX T2"},
        study_uid="1.2.826.0.1.3680043.2.1125.39.10",
    )
    _round_trip(tmp_path, nodes, pacs, study, "brats-v1", timeout=120, caplog=caplog)


@pytest.mark.slow
def test_the_shared_raw_case_comes_back_as_a_seg(data_root, tmp_path, nodes, pacs, caplog):
    study = raw_study(data_root, tmp_path / "study", "1.2.826.0.1.3680043.2.1125.39.11")
    _round_trip(tmp_path, nodes, pacs, study, "brats", timeout=600, caplog=caplog)
