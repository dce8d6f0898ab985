"""DICOM networking helpers: peers and allow-list entries parsed or refused in one line; ``send_files`` skips
what is not DICOM and says why; an unreachable node is a SendError."""

import pytest

from medseg3d.dicom.net import Peer, SendError, dicom_files, echo, parse_allowed, parse_peer, send_files
from medseg3d.errors import InputError


@pytest.mark.parametrize(
    "text, peer",
    [
        ("ORTHANC@127.0.0.1:4242", Peer("ORTHANC", "127.0.0.1", 4242)),
        ("PACS 1@pacs.example.org:104", Peer("PACS 1", "pacs.example.org", 104)),
        ("A@[::1]:11112", Peer("A", "::1", 11112)),
    ],
)
def test_a_peer_is_read_from_aet_at_host_colon_port(text, peer):
    assert parse_peer(text) == peer


@pytest.mark.parametrize(
    "text",
    [
        "ORTHANC@127.0.0.1",
        "127.0.0.1:4242",
        "@h:1",
        "A@h:0",
        "A@h:70000",
        "A@h:x",
        "WAY_TOO_LONG_AE_TITLE@h:1",
        "BACK\\SLASH@h:1",
    ],
)
def test_a_malformed_peer_is_refused_in_one_line(text):
    with pytest.raises(InputError) as excinfo:
        parse_peer(text)
    assert "\n" not in str(excinfo.value) and repr(text) in str(excinfo.value)


def test_allow_entries_name_an_ae_title_and_an_address():
    assert parse_allowed("ORTHANC@10.0.0.5") == ("ORTHANC", "10.0.0.5")
    assert parse_allowed("ORTHANC@*") == ("ORTHANC", "*")
    for bad in ("ORTHANC", "ORTHANC@", "@10.0.0.5"):
        with pytest.raises(InputError, match="AET@ADDRESS|AE title"):
            parse_allowed(bad)


def test_files_that_are_not_dicom_are_skipped_with_a_reason(tmp_path):
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", generate_uid()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    (tmp_path / "sub").mkdir()
    ds.save_as(tmp_path / "sub" / "a.dcm", enforce_file_format=True)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / ".hidden.dcm").write_bytes(b"x")
    found, skipped = dicom_files([tmp_path])
    assert [p.name for p, _ in found] == ["a.dcm"] and pydicom.dcmread(
        found[0][0]
    ).SOPInstanceUID == ds.SOPInstanceUID
    assert {p.name: why for p, why in skipped.items()} == {
        "notes.txt": "not a DICOM file (InvalidDicomError)"
    }


def test_a_node_that_is_not_there_is_a_send_error(tmp_path):
    from serve.helpers import free_port, small_study

    peer = parse_peer(f"NOBODY@127.0.0.1:{free_port()}")
    with pytest.raises(SendError, match="NOBODY@127.0.0.1"):
        send_files([small_study(tmp_path / "s", "1.2.3")], peer, timeout=2)
    with pytest.raises(SendError):
        echo(peer, timeout=2)
    # nothing to send: no association tried
    assert send_files([tmp_path / "s" / "missing"], peer).stored == []
