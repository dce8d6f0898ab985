"""The spool and the checks made on each instance, without a network: what is kept, where, and why not."""

import copy
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset

from medseg3d.errors import InputError
from medseg3d.serve import Spool, status_lines
from medseg3d.serve.node import instance_problem
from medseg3d.serve.usable import unusable_reason, usable_series

from .helpers import small_study


def _image(rows=4, cols=4, bits=16, data=None, syntax="1.2.840.10008.1.2.1") -> Dataset:
    ds = Dataset()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = "1.2.3", "1.2.3.4", "1.2.3.4.5"
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.SamplesPerPixel = rows, cols, bits, 1
    ds.PixelData = np.zeros(rows * cols, np.uint16).tobytes() if data is None else data
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    return ds


def test_an_instance_is_checked_for_its_uids_and_its_pixel_data_length():
    assert instance_problem(_image()) is None
    assert instance_problem(_image(data=b"\0" * 31)) == "pixel data truncated: 31 of 32 bytes"
    # compressed: not sized
    assert instance_problem(_image(data=b"\0" * 3, syntax="1.2.840.10008.1.2.4.50")) is None
    ds = _image()
    del ds.SeriesInstanceUID
    assert instance_problem(ds).startswith("SeriesInstanceUID missing")
    ds = _image()
    ds.SOPInstanceUID = "1.2/../../x"
    assert instance_problem(ds).startswith("SOPInstanceUID missing or not a valid UID")


def test_the_store_is_atomic_private_and_keeps_the_first_copy(tmp_path):
    spool = Spool(tmp_path / "spool")
    path, new = spool.store("1.2", "1.2.3", "1.2.3.4", lambda tmp: Path(tmp).write_bytes(b"first"))
    again, new_again = spool.store("1.2", "1.2.3", "1.2.3.4", lambda tmp: Path(tmp).write_bytes(b"second"))
    assert new and not new_again and again == path and path.read_bytes() == b"first"
    assert spool.state("1.2")["status"] == "received" and spool.count_instances("1.2") == (1, 1)
    assert (tmp_path / "spool").stat().st_mode & 0o777 == 0o700

    def fail(tmp):
        Path(tmp).write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        spool.store("1.2", "1.2.3", "1.2.3.5", fail)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no half-written file, no temporary


def test_a_state_update_for_a_round_that_moved_on_is_dropped(tmp_path):
    spool = Spool(tmp_path)
    spool.store("1.2", "1.2.3", "1.2.3.4", lambda tmp: Path(tmp).write_bytes(b"x"))
    spool.update("1.2", 0, status="processing")
    assert spool.reopen("1.2")["round"] == 1 and spool.reopen("1.2") is None  # already receiving
    assert spool.update("1.2", 0, status="done") is None and spool.state("1.2")["status"] == "received"


def test_status_refuses_a_folder_that_is_no_spool(tmp_path):
    with pytest.raises(InputError, match="not a medseg3d spool folder"):
        status_lines(tmp_path)


def test_unusable_series_are_named_with_the_reason(tmp_path):
    ds = Dataset()
    ds.Modality, ds.SOPClassUID = "MR", "1.2.840.10008.5.1.4.1.1.4"
    assert unusable_reason(ds) is None
    for change, reason in [
        ({"Modality": "CT"}, "modality CT, not MR"),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.66.4"}, "not a single-frame MR image"),
        ({"SeriesDescription": "3-Plane_Loc"}, "localiser"),
        ({"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}, "localiser"),
        ({"ImageType": ["DERIVED", "PRIMARY", "ADC"]}, "derived series (ImageType DERIVED/PRIMARY/ADC)"),
    ]:
        other = copy.deepcopy(ds)
        for k, v in change.items():
            setattr(other, k, v)
        assert reason in unusable_reason(other)
    study = small_study(tmp_path / "s", "1.2.9", slices=2)
    kept, notes = usable_series(sorted(study.iterdir()))
    assert kept == [] and len(notes) == 4 and all("2 image(s), too few for a volume" in n for n in notes)
