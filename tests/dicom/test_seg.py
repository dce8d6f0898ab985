from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("highdicom")
import pydicom
import SimpleITK as sitk

from medseg3d.dicom.seg import read_dicom_seg, read_dicom_seg_frames, write_dicom_seg
from medseg3d.errors import InputError
from medseg3d.io import read_volume
from medseg3d.labels import get_scheme

CASE = "Brats18_2013_2_1"
BOX = (slice(90, 130), slice(100, 150), slice(90, 102))  # 40 x 50 x 12 voxels through the tumour


def write_series(image: sitk.Image, folder: Path) -> None:
    """A small MR DICOM series, one file per slice, as a scanner export would be laid out."""
    folder.mkdir(parents=True)
    image = sitk.Cast(image, sitk.sitkInt16)
    d = image.GetDirection()
    root = "1.2.826.0.1.3680043.8.498.77"
    common = [
        ("0008|0060", "MR"),
        ("0008|0016", "1.2.840.10008.5.1.4.1.1.4"),
        ("0020|000e", f"{root}.1"),
        ("0020|000d", f"{root}.2"),
        ("0020|0052", f"{root}.3"),
        ("0010|0010", "Test^Patient"),
        ("0010|0020", "T1"),
        ("0018|0050", f"{image.GetSpacing()[2]:.4f}"),
        ("0020|0037", "\\".join(f"{v:.6f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7]))),
    ]
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        s = image[:, :, k]
        for tag, value in common:
            s.SetMetaData(tag, value)
        s.SetMetaData(
            "0020|0032", "\\".join(f"{v:.4f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k)))
        )
        s.SetMetaData("0020|0013", str(k + 1))
        s.SetMetaData("0008|0018", f"{root}.4.{k + 1}")
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(s)


@pytest.fixture(scope="module")
def series(brats_root, tmp_path_factory):
    """(series folder, the series as a Volume, the reference labels on it) from a crop of a shared case."""
    folder = tmp_path_factory.mktemp("dicom") / "series"
    flair = sitk.ReadImage(str(brats_root / CASE / f"{CASE}_flair.nii.gz"))[BOX]
    write_series(flair, folder)
    grid = read_volume(folder)
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(brats_root / CASE / f"{CASE}_seg.nii.gz"))[BOX])
    return folder, grid, grid.with_array(np.transpose(seg, (2, 1, 0)).astype(np.uint8))


def test_dicom_seg_round_trip_voxel_for_voxel_with_two_readers(series, tmp_path):
    folder, grid, labels = series
    assert set(np.unique(labels.array)) == {0, 1, 2, 4}  # all three tumour labels in the crop
    out = write_dicom_seg(labels, folder, tmp_path / "seg.dcm", get_scheme("brats"), model_name="brats")
    assert [p.name for p in tmp_path.iterdir()] == ["seg.dcm"]  # no temporary left behind
    back = read_dicom_seg(out, folder, get_scheme("brats"))
    assert back.same_grid(grid) and np.array_equal(back.array, labels.array)
    second = read_dicom_seg_frames(out, grid, get_scheme("brats"))
    assert np.array_equal(second.array, labels.array)


def test_dicom_seg_references_the_source_series_with_coded_segments(series, tmp_path):
    folder, _, labels = series
    ds = pydicom.dcmread(write_dicom_seg(labels, folder, tmp_path / "seg.dcm", get_scheme("brats")))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and ds.SegmentationType == "BINARY"
    source = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert (
        ds.FrameOfReferenceUID == source.FrameOfReferenceUID
        and ds.StudyInstanceUID == source.StudyInstanceUID
    )
    segments = [
        (
            s.SegmentNumber,
            s.SegmentLabel,
            s.SegmentedPropertyTypeCodeSequence[0].CodeValue,
            s.SegmentedPropertyCategoryCodeSequence[0].CodeValue,
            s.SegmentAlgorithmType,
        )
        for s in ds.SegmentSequence
    ]
    assert segments == [
        (1, "NCR/NET (label 1)", "6574001", "49755003", "AUTOMATIC"),
        (2, "edema (label 2)", "79654002", "49755003", "AUTOMATIC"),
        (3, "enhancing (label 4)", "108369006", "49755003", "AUTOMATIC"),
    ]


def test_a_segmentation_on_another_grid_is_refused(series, tmp_path):
    folder, _, labels = series
    shifted = labels.with_array(labels.array)
    shifted.affine[0, 3] += 5.0
    with pytest.raises(InputError, match="grid"):
        write_dicom_seg(shifted, folder, tmp_path / "seg.dcm", get_scheme("brats"))
    with pytest.raises(InputError, match="no DICOM image"):
        write_dicom_seg(labels, tmp_path, tmp_path / "seg.dcm", get_scheme("brats"))
