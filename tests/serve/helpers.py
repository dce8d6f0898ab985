"""What the node's tests share: a small DICOM study, a stand-in segmenter, a pynetdicom peer as the PACS,
free loopback ports and a bounded wait."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np

from medseg3d.io import Volume

SERIES = {
    "flair": "AX_FLAIR|AX FLAIR",
    "t1": "AX_T1|AX T1",
    "t1ce": "AX_T1_POST|AX T1 POST",
    "t2": "AX_T2|AX T2",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float = 20.0, what: str = "the condition"):
    """Poll ``condition`` every 50 ms; its first true value, or AssertionError after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def small_study(folder: Path, study_uid: str, slices: int = 4) -> Path:
    """A 4-sequence MR study of tiny random volumes (16 x 16 x ``slices``), one series folder per sequence."""
    from layouts import write_dicom_case

    rng = np.random.default_rng(abs(hash(study_uid)) % 2**32)
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    vols = {m: Volume(rng.integers(0, 500, (16, 16, slices)).astype(np.int16), affine) for m in SERIES}
    return write_dicom_case(vols, folder, SERIES, study_uid=study_uid)


class StandIn:
    """A segmenter that takes no time: writes one DICOM object (a copy of a T1ce image with new UIDs) per
    study and records the channels it was given. ``delay`` seconds of sleep first (to be caught mid-study)."""

    modalities = ("flair", "t1", "t1ce", "t2")

    def __init__(self, delay: float = 0.0, started: Path | None = None):
        self.calls: list[dict] = []
        self.delay, self.started = delay, started

    def __call__(self, channels: dict, out_dir: Path, say) -> None:
        import pydicom
        from pydicom.uid import generate_uid

        if self.started is not None:
            self.started.write_text("segmenting\n")
        time.sleep(self.delay)
        self.calls.append(dict(channels))
        ds = pydicom.dcmread(min(Path(channels["t1ce"]).glob("*.dcm")))
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID, ds.SeriesDescription = generate_uid(), "stand-in result"
        ds.save_as(Path(out_dir) / "result.seg.dcm")


class Pacs:
    """A pynetdicom Storage SCP on 127.0.0.1 that keeps what it receives (the PACS the node sends back to);
    over TLS with a server ``tls`` context."""

    def __init__(self, port: int | None = None, ae_title: str = "PACS", tls=None):
        self.port, self.ae_title, self.tls = port or free_port(), ae_title, tls
        self.received: list = []
        self._server = None

    @property
    def address(self) -> str:
        return f"{self.ae_title}@127.0.0.1:{self.port}"

    def start(self) -> Pacs:
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

        ae = AE(ae_title=self.ae_title)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)

        def on_store(event):
            ds = event.dataset
            ds.file_meta = event.file_meta
            self.received.append(ds)
            return 0x0000

        self._server = ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            ssl_context=self.tls,
            evt_handlers=[(evt.EVT_C_STORE, on_store)],
        )
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def sop_uids(self) -> list[str]:
        return [str(ds.SOPInstanceUID) for ds in self.received]


RAW_CASE = "raw_clinical/TCGA-FG-6692/raw"
RAW_SERIES = {
    "flair": "FLAIR|AX T2 FLAIR",
    "t1": "T1|AX T1",
    "t1ce": "T1POST|AX T1 POST GD",
    "t2": "T2|AX T2 FSE",
}


def raw_study(data_root: Path, folder: Path, study_uid: str) -> Path:
    """The shared raw case (four scans as exported, each on its own grid) as a DICOM study: one series per
    sequence, identified only by its SeriesDescription."""
    from layouts import write_dicom_case

    from medseg3d.io import read_volume

    vols = {m: read_volume(data_root / RAW_CASE / f"{m}.nii.gz") for m in RAW_SERIES}
    return write_dicom_case(vols, folder, RAW_SERIES, study_uid=study_uid)


def seg_matches_the_nifti(seg_ds, spool: Path, tmp: Path, scheme) -> tuple[int, int]:
    """Read a received DICOM SEG with highdicom onto the series it references (in the node's spool) and
    compare it voxel for voxel with the NIfTI segmentation the node wrote; returns (voxels labelled, voxels
    differing)."""
    import highdicom as hd

    from medseg3d.dicom.seg import read_dicom_seg
    from medseg3d.io import read_volume

    hd.seg.Segmentation.from_dataset(seg_ds)  # readable by highdicom as a Segmentation
    study = str(seg_ds.StudyInstanceUID)
    source = spool / "studies" / study / "series" / str(seg_ds.ReferencedSeriesSequence[0].SeriesInstanceUID)
    path = tmp / "received.seg.dcm"
    seg_ds.save_as(path, enforce_file_format=True)
    (labels_path,) = (spool / "studies" / study / "out").glob("*/segmentation.nii.gz")
    labels = read_volume(labels_path)
    back = read_dicom_seg(path, source, scheme, grid=labels)
    return int((labels.array > 0).sum()), int((back.array != labels.array).sum())
