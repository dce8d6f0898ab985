"""The node end to end on loopback with a stand-in segmenter (fast): receive, complete, resolve, send back,
and the faults of issue 39 (destination down, killed mid-study, a study sent twice, a corrupt instance,
interleaved studies), the allow-list and studies it must not segment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest

from medseg3d.dicom.net import SendError, echo, send_files
from medseg3d.serve import status_lines

from .helpers import Pacs, StandIn, free_port, small_study, wait_for

STUDY_A = "1.2.826.0.1.3680043.2.1125.39.1"
STUDY_B = "1.2.826.0.1.3680043.2.1125.39.2"


def _state(spool: Path, uid: str) -> dict:
    return json.loads((spool / "studies" / uid / "state.json").read_text(encoding="utf-8"))


def _status_is(spool: Path, uid: str, status: str):
    return lambda: (
        (spool / "studies" / uid / "state.json").exists() and _state(spool, uid)["status"] == status
    )


def test_a_study_sent_to_the_node_comes_back_once_to_the_destination(tmp_path, nodes, pacs):
    study = small_study(tmp_path / "study", STUDY_A)
    segmenter = StandIn()
    _node, address = nodes(tmp_path / "spool", segmenter, send_to=pacs.address)
    assert echo(address)
    result = send_files([study], address)
    assert len(result.stored) == 16 and not result.refused
    wait_for(_status_is(tmp_path / "spool", STUDY_A, "sent"), what="the study to be sent")
    assert len(pacs.received) == 1 and pacs.received[0].StudyInstanceUID == STUDY_A
    # each channel was identified from its series description, one series each
    (channels,) = segmenter.calls
    descriptions = {
        m: pydicom.dcmread(next(Path(p).glob("*.dcm")), stop_before_pixels=True).SeriesDescription
        for m, p in channels.items()
    }
    assert descriptions == {"flair": "AX FLAIR", "t1": "AX T1", "t1ce": "AX T1 POST", "t2": "AX T2"}
    lines = status_lines(tmp_path / "spool")
    assert lines[0].startswith("received 0, waiting 0, processing 0, done 0, failed 0, sent 1")
    assert STUDY_A in lines[1] and "16 instances in 4 series" in lines[1] and "sent 1/1" in lines[1]


def test_the_spool_is_private_and_holds_whole_files_by_study(tmp_path, nodes):
    study = small_study(tmp_path / "study", STUDY_A)
    _, address = nodes(tmp_path / "spool", StandIn(), worker=False)
    send_files([study], address)
    spool = tmp_path / "spool"
    for folder in [
        spool,
        spool / "studies",
        spool / "studies" / STUDY_A,
        *(spool / "studies" / STUDY_A / "series").iterdir(),
    ]:
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    files = sorted((spool / "studies" / STUDY_A / "series").rglob("*"))
    instances = [f for f in files if f.is_file()]
    assert len(instances) == 16 and all(f.suffix == ".dcm" for f in instances)  # no temporary left
    sent = {pydicom.dcmread(f).SOPInstanceUID: pydicom.dcmread(f).PixelData for f in study.rglob("*.dcm")}
    for f in instances:
        ds = pydicom.dcmread(f)
        assert f.stem == ds.SOPInstanceUID and ds.PixelData == sent[ds.SOPInstanceUID]  # byte for byte


def _settle(seconds: float = 1.0) -> None:
    """Give a node time to do what it should not (send again, segment again) before checking it did not."""
    time.sleep(seconds)


def _try_send(study: Path, port: int) -> bool:
    from medseg3d.dicom.net import parse_peer

    try:
        return len(send_files([study], parse_peer(f"MEDSEG3D@127.0.0.1:{port}"), timeout=2).stored) > 0
    except SendError:
        return False


def test_the_destination_down_then_up_gets_the_result_once(tmp_path, nodes):
    pacs = Pacs()  # not started yet: nothing listens on its port
    study = small_study(tmp_path / "study", STUDY_A)
    _, address = nodes(tmp_path / "spool", StandIn(), send_to=pacs.address, retry=(0.2, 0.4))
    send_files([study], address)
    spool = tmp_path / "spool"
    wait_for(lambda: _state(spool, STUDY_A).get("attempts", 0) >= 2, what="two failed tries")
    state = _state(spool, STUDY_A)
    assert state["status"] == "done" and state["sent"] == [] and "association" in state["send_error"]
    assert "done 1" in status_lines(spool)[0]
    pacs.start()
    try:
        wait_for(_status_is(spool, STUDY_A, "sent"), what="the send after the destination came up")
        _settle()
        assert len(pacs.received) == 1
    finally:
        pacs.stop()


def test_a_node_killed_mid_study_completes_it_after_a_restart_and_sends_once(tmp_path, nodes, pacs):
    spool, started = tmp_path / "spool", tmp_path / "segmenting"
    port = free_port()
    tests = Path(__file__).parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "serve.node_process", str(spool), str(port), pacs.address, str(started)],
        cwd=tests,
        env=env,
    )
    try:
        study = small_study(tmp_path / "study", STUDY_A)
        wait_for(lambda: _try_send(study, port), timeout=60, what="the node process to take the study")
        wait_for(started.exists, what="the segmentation to start")
        assert _state(spool, STUDY_A)["status"] == "processing"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    segmenter = StandIn()
    nodes(spool, segmenter, send_to=pacs.address)
    wait_for(_status_is(spool, STUDY_A, "sent"), what="the restarted node to finish the study")
    assert len(segmenter.calls) == 1 and len(pacs.received) == 1
    nodes.stop_all()  # and once more after the send: nothing is segmented or sent twice
    nodes(spool, segmenter, send_to=pacs.address)
    _settle()
    assert len(segmenter.calls) == 1 and len(pacs.received) == 1


def test_a_send_cut_short_resumes_with_the_files_not_yet_stored(tmp_path, nodes, pacs):
    class TwoObjects(StandIn):
        def __call__(self, channels, out_dir, say):
            super().__call__(channels, out_dir, say)
            from pydicom.uid import generate_uid

            ds = pydicom.dcmread(out_dir / "result.seg.dcm")
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.save_as(out_dir / "result.report.dcm")

    spool = tmp_path / "spool"
    node, address = nodes(spool, TwoObjects(), send_to=pacs.address, worker=False)
    send_files([small_study(tmp_path / "study", STUDY_A)], address)
    node.work_once(now=time.time() + 1)  # complete and segmented; the send comes next
    node.work_once(now=time.time() + 1)
    first = _state(spool, STUDY_A)
    assert first["status"] == "sent" and first["sent"] == ["result.report.dcm", "result.seg.dcm"]
    # as if the node had died after the destination stored the first file: only the second goes again
    node.spool.update(STUDY_A, status="done", sent=["result.report.dcm"])
    pacs.received.clear()
    node.work_once()
    assert [str(ds.SOPInstanceUID) for ds in pacs.received] == [
        str(pydicom.dcmread(spool / "studies" / STUDY_A / "out" / "0" / "result.seg.dcm").SOPInstanceUID)
    ]


def _one_study_sent(tmp_path, nodes, pacs):
    """A node with a stand-in segmenter that has received study A and sent its result: (spool, study folder,
    segmenter, the node's address)."""
    spool = tmp_path / "spool"
    study = small_study(tmp_path / "study", STUDY_A)
    segmenter = StandIn()
    _, address = nodes(spool, segmenter, send_to=pacs.address)
    send_files([study], address)
    wait_for(_status_is(spool, STUDY_A, "sent"), what="the first send")
    return spool, study, segmenter, address


def test_a_study_sent_twice_is_segmented_once_and_new_images_reopen_it(tmp_path, nodes, pacs):
    spool, study, segmenter, address = _one_study_sent(tmp_path, nodes, pacs)
    assert len(send_files([study], address).stored) == 16  # acknowledged: the spool holds them already
    _settle()
    assert len(segmenter.calls) == 1 and len(pacs.received) == 1 and _state(spool, STUDY_A)["round"] == 0
    # an image the study did not have (a slice added later) reopens it: segmented again, the new result sent
    extra = small_study(tmp_path / "more", STUDY_A, slices=5)
    added = [f for f in extra.rglob("*.dcm") if f.name == "IM0005.dcm" and "AX_T2" in str(f)]
    send_files(added, address)
    wait_for(
        lambda: _state(spool, STUDY_A)["round"] == 1 and _state(spool, STUDY_A)["status"] == "sent",
        what="the second round",
    )
    assert len(segmenter.calls) == 2 and len(pacs.received) == 2


def test_a_result_routed_back_to_the_node_does_not_reopen_the_study(tmp_path, nodes, pacs):
    from pydicom.uid import generate_uid

    spool, study, segmenter, address = _one_study_sent(tmp_path, nodes, pacs)
    seg = pydicom.dcmread(next((study / "AX_T2").glob("*.dcm")))  # as a PACS routing our SEG back would
    seg.SOPClassUID = seg.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.66.4"
    seg.SOPInstanceUID = seg.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    seg.SeriesInstanceUID, seg.Modality = generate_uid(), "SEG"
    seg.save_as(tmp_path / "seg.dcm")
    assert len(send_files([tmp_path / "seg.dcm"], address).stored) == 1
    _settle()
    assert _state(spool, STUDY_A)["status"] == "sent" and _state(spool, STUDY_A)["round"] == 0
    assert len(segmenter.calls) == 1 and len(pacs.received) == 1


def test_a_segmenter_that_crashes_fails_its_study_and_the_next_one_goes_through(tmp_path, nodes, pacs):
    class CrashesOnA(StandIn):
        def __call__(self, channels, out_dir, say):
            if STUDY_A in str(channels["t1ce"]):
                raise RuntimeError("out of memory")
            super().__call__(channels, out_dir, say)

    spool = tmp_path / "spool"
    _, address = nodes(spool, CrashesOnA(), send_to=pacs.address)
    send_files([small_study(tmp_path / "a", STUDY_A)], address)
    wait_for(_status_is(spool, STUDY_A, "failed"), what="study A to fail")
    assert _state(spool, STUDY_A)["reason"] == "segmentation failed: RuntimeError: out of memory"
    send_files([small_study(tmp_path / "b", STUDY_B)], address)
    wait_for(_status_is(spool, STUDY_B, "sent"), what="study B")
    assert [str(ds.StudyInstanceUID) for ds in pacs.received] == [STUDY_B]


def test_a_corrupt_instance_is_kept_aside_and_the_study_still_goes_through(tmp_path, nodes, pacs):
    spool = tmp_path / "spool"
    study = small_study(tmp_path / "study", STUDY_A)
    broken = max((study / "AX_T2").glob("*.dcm"))
    ds = pydicom.dcmread(broken)
    ds.PixelData = ds.PixelData[:100]  # a transfer cut short
    ds.save_as(broken)
    no_uid = max((study / "AX_T1").glob("*.dcm"))
    ds = pydicom.dcmread(no_uid)
    ds.StudyInstanceUID = "../../etc"  # nor may a UID name a path outside the spool
    ds.save_as(no_uid)
    _, address = nodes(spool, StandIn(), send_to=pacs.address)
    result = send_files([study], address)
    assert set(result.refused) == {broken, no_uid} and all("0xC210" in v for v in result.refused.values())
    kept = sorted((spool / "malformed").glob("*.txt"))
    reasons = " ".join(p.read_text(encoding="utf-8") for p in kept)
    assert (
        len(kept) == 2
        and "pixel data truncated: 100 of 512 bytes" in reasons
        and "StudyInstanceUID" in reasons
    )
    assert len(list((spool / "malformed").glob("*.dcm"))) == 2
    wait_for(_status_is(spool, STUDY_A, "sent"), what="the rest of the study to be segmented and sent")
    assert echo(address) and "malformed instances kept aside 2" in status_lines(spool)[0]


def test_two_studies_arriving_interleaved_are_each_segmented_from_their_own_images(tmp_path, nodes, pacs):
    spool = tmp_path / "spool"
    a = sorted(small_study(tmp_path / "a", STUDY_A).rglob("*.dcm"))
    b = sorted(small_study(tmp_path / "b", STUDY_B).rglob("*.dcm"))
    segmenter = StandIn()
    _, address = nodes(spool, segmenter, send_to=pacs.address)
    interleaved = [f for pair in zip(a, b) for f in pair]
    assert len(send_files(interleaved, address).stored) == 32
    wait_for(
        lambda: _status_is(spool, STUDY_A, "sent")() and _status_is(spool, STUDY_B, "sent")(),
        what="both studies",
    )
    assert sorted(str(ds.StudyInstanceUID) for ds in pacs.received) == [STUDY_A, STUDY_B]
    for channels in segmenter.calls:  # every channel of a call comes from one study
        studies = {
            pydicom.dcmread(next(Path(p).glob("*.dcm")), stop_before_pixels=True).StudyInstanceUID
            for p in channels.values()
        }
        assert len(studies) == 1 and all(len(list(Path(p).glob("*.dcm"))) == 4 for p in channels.values())


def test_only_allowed_callers_are_accepted(tmp_path, nodes):
    study = small_study(tmp_path / "study", STUDY_A)
    _, address = nodes(tmp_path / "spool", StandIn(), allow=[("PACS", "127.0.0.1")], worker=False)
    assert len(send_files([study], address, calling_aet="PACS").stored) == 16
    with pytest.raises(SendError, match="rejected"):
        send_files([study], address, calling_aet="STRANGER")
    _, elsewhere = nodes(tmp_path / "spool2", StandIn(), allow=[("PACS", "10.9.8.7")], worker=False)
    with pytest.raises(SendError):  # the right AE title from the wrong address: the connection is closed
        send_files([study], elsewhere, calling_aet="PACS")
    assert not (tmp_path / "spool2" / "studies" / STUDY_A).exists()


def test_a_second_node_on_the_same_spool_is_refused(tmp_path, nodes):
    from medseg3d.errors import InputError
    from medseg3d.serve import Node

    nodes(tmp_path / "spool", StandIn(), worker=False)
    with pytest.raises(InputError, match="another medseg3d serve is using this spool"):
        Node(tmp_path / "spool", StandIn())


def test_a_study_that_cannot_be_resolved_is_reported_not_segmented(tmp_path, nodes, pacs, caplog):
    spool = tmp_path / "spool"
    study = small_study(tmp_path / "study", STUDY_A)
    flair = pydicom.dcmread(next((study / "AX_FLAIR").glob("*.dcm")))
    for f in (study / "AX_T1").glob("*.dcm"):  # two FLAIRs, no T1: which is which would be a guess
        ds = pydicom.dcmread(f)
        ds.SeriesDescription = flair.SeriesDescription
        ds.save_as(f)
    segmenter = StandIn()
    _, address = nodes(spool, segmenter, send_to=pacs.address)
    with caplog.at_level("INFO", logger="medseg3d.serve"):
        send_files([study], address)
        wait_for(
            lambda: any(
                r.getMessage().startswith(f"study {STUDY_A}: cannot tell the sequences apart")
                for r in caplog.records
            ),
            what="the study to be reported",
        )
    state = _state(spool, STUDY_A)
    assert state["status"] == "failed" and "flair" in state["reason"] and segmenter.calls == []
    _settle(0.5)
    assert pacs.received == [] and "failed 1" in status_lines(spool)[0]


def test_localisers_other_modalities_and_derived_series_are_left_out_with_a_line(
    tmp_path, nodes, pacs, caplog
):
    import numpy as np
    from layouts import write_dicom_series

    from medseg3d.io import Volume

    spool = tmp_path / "spool"
    study = small_study(tmp_path / "study", STUDY_A)
    vol = Volume(np.ones((16, 16, 3), np.int16), np.eye(4))
    write_dicom_series(vol, study / "loc", "3-plane loc", 7, STUDY_A)
    write_dicom_series(vol, study / "ct", "AX FLAIR", 8, STUDY_A, tags={"0008|0060": "CT"})
    write_dicom_series(vol, study / "adc", "AX T2", 9, STUDY_A, tags={"0008|0008": "DERIVED\\PRIMARY\\ADC"})
    segmenter = StandIn()
    _, address = nodes(spool, segmenter, send_to=pacs.address)
    with caplog.at_level("INFO", logger="medseg3d.serve"):
        send_files([study], address)
        wait_for(_status_is(spool, STUDY_A, "sent"), what="the study")
    lines = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(lines) == 3 and all(line.startswith(f"study {STUDY_A}:") for line in lines)
    text = " ".join(lines)
    assert "localiser" in text and "modality CT" in text and "derived series" in text
    assert len(segmenter.calls) == 1 and {p.name for p in map(Path, segmenter.calls[0].values())} == {
        f"{STUDY_A}.{n}" for n in (1, 2, 3, 4)
    }
