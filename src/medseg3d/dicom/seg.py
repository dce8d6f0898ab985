"""DICOM Segmentation objects (``--output-format dicom-seg``): written and read with highdicom.

A hospital viewer (OHIF, 3D Slicer, a PACS) opens a segmentation when it is a DICOM SEG object that
references the images it was drawn on. :func:`write_dicom_seg` makes one from a label :class:`Volume` that
lies on the grid of a source DICOM series (what ``medseg3d predict`` writes for a DICOM input): one segment
per non-background label, each with coded terms from SNOMED CT (scheme designator SCT):

* category: 49755003 "Morphologically Abnormal Structure" for every segment;
* type: 6574001 "Necrosis" for a necrotic class (BraTS label 1, necrotic and non-enhancing tumour core),
  79654002 "Edema" for an edema class (BraTS label 2), 108369006 "Neoplasm" for any other tumour class
  (BraTS label 4, enhancing tumour; the segment label says which).

The segments are BINARY frames referencing the source instances (empty frames left out), algorithm type
AUTOMATIC. Segment ``n`` holds the scheme's ``n``-th non-background label value, which :func:`read_dicom_seg`
uses to paint the segments back onto the source grid as label values.

highdicom and pydicom are dependencies of medseg3d.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import Volume, atomic_write
from ..labels import LabelScheme

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
CATEGORY_SCT = ("49755003", "Morphologically Abnormal Structure")
TYPE_SCT = {
    "necrosis": ("6574001", "Necrosis"),
    "edema": ("79654002", "Edema"),
    "neoplasm": ("108369006", "Neoplasm"),
}


def _require_highdicom():
    try:
        import highdicom
        import pydicom
    except ImportError as exc:
        raise InputError(
            "DICOM SEG needs highdicom and pydicom; reinstall medseg3d (`pip install medseg3d`)"
        ) from exc
    return highdicom, pydicom


def segment_type(class_name: str) -> tuple[str, str]:
    """SNOMED CT (code, meaning) of the segmented property type for a class name."""
    name = class_name.lower()
    if "necro" in name or "ncr" in name:
        return TYPE_SCT["necrosis"]
    if "edema" in name or "oedema" in name:
        return TYPE_SCT["edema"]
    return TYPE_SCT["neoplasm"]


def read_source_series(source_dir) -> list:
    """The source DICOM series' datasets (pixel data not loaded), sorted along the slice normal.

    Raises:
        InputError: no DICOM image in the folder, or more than one series.
    """
    _, pydicom = _require_highdicom()
    from pydicom.errors import InvalidDicomError

    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise InputError(f"{source_dir}: not a folder; give the DICOM series the segmentation was made from")
    datasets = []
    for path in sorted(p for p in source_dir.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, EOFError):
            ds = None  # not DICOM (a README, a thumbnail): not part of the series
        if ds is not None and "ImagePositionPatient" in ds and "Rows" in ds:
            datasets.append(ds)
    if not datasets:
        raise InputError(f"{source_dir}: holds no DICOM image slices; give the source series folder")
    series = {ds.SeriesInstanceUID for ds in datasets}
    if len(series) > 1:
        raise InputError(f"{source_dir}: holds {len(series)} DICOM series; give a folder with exactly one")
    normal = np.cross(*np.asarray(datasets[0].ImageOrientationPatient, dtype=float).reshape(2, 3))
    datasets.sort(key=lambda ds: float(np.dot(normal, np.asarray(ds.ImagePositionPatient, dtype=float))))
    return datasets


def _slice_index_of(datasets: list, grid: Volume) -> list[int]:
    """For each source slice, its k index on ``grid``; checks that the slice's rows and columns are the
    grid's."""
    inverse = np.linalg.inv(grid.affine)
    indices = []
    for ds in datasets:
        position_ras = _LPS_TO_RAS @ np.array([*map(float, ds.ImagePositionPatient), 1.0])
        ijk = inverse @ position_ras
        orientation = np.asarray(ds.ImageOrientationPatient, dtype=float).reshape(2, 3)  # row dir, column dir
        row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
        # along a row the column index grows (grid axis i); down a column the row index grows (grid axis j)
        step_i = _LPS_TO_RAS[:3, :3] @ orientation[0] * col_spacing
        step_j = _LPS_TO_RAS[:3, :3] @ orientation[1] * row_spacing
        fits = (
            np.allclose(ijk[:2], 0, atol=1e-2)
            and abs(ijk[2] - round(ijk[2])) < 1e-2
            and np.allclose(grid.affine[:3, 0], step_i, atol=1e-3)
            and np.allclose(grid.affine[:3, 1], step_j, atol=1e-3)
            and (int(ds.Columns), int(ds.Rows)) == grid.shape[:2]
            and 0 <= round(ijk[2]) < grid.shape[2]
        )
        if not fits:
            raise InputError(
                "the segmentation's grid is not the source DICOM series' grid; write the segmentation "
                "on the series' own grid (as medseg3d predict does for a DICOM input)"
            )
        indices.append(round(float(ijk[2])))
    return indices


def write_dicom_seg(
    labels: Volume,
    source_dir,
    out_path,
    scheme: LabelScheme,
    *,
    model_name: str = "medseg3d",
    model_version: str = "1",
    series_description: str = "medseg3d tumour segmentation",
) -> Path:
    """Write ``labels`` (on the grid of the DICOM series in ``source_dir``) as a DICOM SEG file, atomically.

    Args:
        labels: label map in the scheme's file values, on the source series' grid (same shape and affine).
        source_dir: folder of the source DICOM series (one series).
        out_path: the ``.dcm`` file to write.
        scheme: label values and class names; one segment per non-background value, in the scheme's order.
        model_name, model_version: recorded as the segmentation algorithm.

    Returns:
        ``out_path``.

    Raises:
        InputError: highdicom missing, no usable series, grids differ, or the folder cannot be written.
    """
    hd, _ = _require_highdicom()
    from pydicom.sr.coding import Code

    from .. import __version__

    datasets = read_source_series(source_dir)
    k_of = _slice_index_of(datasets, labels)
    for ds in datasets:  # in memory only: highdicom needs it, and some exporters leave the optional tag out
        if "SliceThickness" not in ds or ds.SliceThickness in (None, ""):
            ds.SliceThickness = round(labels.spacing[2], 6)
    values = np.asarray(labels.array)
    unknown = sorted(set(np.unique(values).tolist()) - set(scheme.values))
    if unknown:
        raise InputError(
            f"label values {unknown} are not in the '{scheme.name}' scheme; choose the right --labels"
        )
    segment_values = list(scheme.values[1:])
    # frames in source order: (slices, rows, cols, segments); a grid slice [:, :, k] is (cols, rows)
    frames = np.stack([values[:, :, k].T for k in k_of])
    masks = np.stack([frames == v for v in segment_values], axis=-1)
    descriptions = []
    algorithm = hd.AlgorithmIdentificationSequence(
        name=model_name, version=str(model_version), family=Code("123110", "DCM", "Artificial Intelligence")
    )
    for number, (value, name) in enumerate(zip(segment_values, scheme.class_names[1:]), start=1):
        code, meaning = segment_type(name)
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=f"{name} (label {value})",
                segmented_property_category=Code(CATEGORY_SCT[0], "SCT", CATEGORY_SCT[1]),
                segmented_property_type=Code(code, "SCT", meaning),
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
            )
        )
    try:
        seg = hd.seg.Segmentation(
            source_images=datasets,
            pixel_array=masks,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=hd.UID(),
            series_number=900,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="medseg3d",
            manufacturer_model_name=model_name,
            software_versions=str(__version__),
            device_serial_number="0",
            series_description=series_description,
        )
    except (
        ValueError,
        TypeError,
        AttributeError,
    ) as exc:  # a source series missing what a SEG must reference
        raise InputError(
            f"{source_dir}: this DICOM series cannot be referenced by a DICOM SEG "
            f"({str(exc).splitlines()[0][:160]}); the NIfTI segmentation is unaffected"
        ) from exc
    out_path = Path(out_path)
    if not out_path.parent.is_dir():
        raise InputError(f"{out_path.parent}: output folder does not exist; create it first")
    try:
        return atomic_write(out_path, seg.save_as)
    except OSError as exc:
        raise InputError(
            f"{out_path}: cannot write the DICOM SEG ({exc.strerror}); choose another path"
        ) from exc


def read_dicom_seg(seg_path, source_dir, scheme: LabelScheme, grid: Volume | None = None) -> Volume:
    """Read a DICOM SEG (highdicom) back onto the source series' grid as label values.

    Args:
        seg_path: the SEG file.
        source_dir: the source DICOM series it references.
        scheme: segment ``n`` is painted with the scheme's ``n``-th non-background value.
        grid: the source series as a :class:`Volume` (default: read with :func:`medseg3d.io.read_volume`).

    Returns:
        The label map as a :class:`Volume` on ``grid``.
    """
    hd, _ = _require_highdicom()
    from ..io import read_volume

    grid = grid if grid is not None else read_volume(source_dir)
    datasets = read_source_series(source_dir)
    k_of = _slice_index_of(datasets, grid)
    seg = hd.seg.segread(str(seg_path))
    numbers = [int(n) for n in seg.segment_numbers]
    if max(numbers) >= len(scheme.values):
        raise InputError(
            f"{seg_path}: has segment {max(numbers)} but the '{scheme.name}' scheme has "
            f"{len(scheme.values) - 1} labels; choose the right --labels"
        )
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[ds.SOPInstanceUID for ds in datasets],
        segment_numbers=numbers,
        ignore_spatial_locations=False,
    )
    out = np.zeros(grid.shape, dtype=scheme.to_values(np.zeros(1, dtype=np.int64)).dtype)
    for s, k in enumerate(k_of):
        frame = np.zeros(pixels.shape[1:3], dtype=out.dtype)
        for column, number in enumerate(numbers):
            frame[pixels[s, :, :, column] > 0] = scheme.values[number]
        out[:, :, k] = frame.T
    return grid.with_array(out)


def read_dicom_seg_frames(seg_path, grid: Volume, scheme: LabelScheme) -> Volume:
    """A second reader, with pydicom alone: each frame placed by its own position, painted by its segment.

    Independent of highdicom's reader (used to cross-check it): every frame's ``ImagePositionPatient``
    (per-frame functional groups) is mapped through the inverse of ``grid``'s affine to its slice, and its
    ``ReferencedSegmentNumber`` picks the label value (segment ``n`` = the scheme's ``n``-th non-background
    value).

    Args:
        seg_path: the DICOM SEG file.
        grid: the image grid the SEG was drawn on.
        scheme: the label scheme.

    Returns:
        The label map on ``grid``.

    Raises:
        InputError: the file is no DICOM Segmentation, or a frame does not lie on the grid.
    """
    _, pydicom = _require_highdicom()
    ds = pydicom.dcmread(str(seg_path))
    if ds.SOPClassUID != "1.2.840.10008.5.1.4.1.1.66.4":
        raise InputError(f"{seg_path}: is not a DICOM Segmentation object (SOP class {ds.SOPClassUID})")
    frames = ds.pixel_array
    if frames.ndim == 2:
        frames = frames[None]
    inverse = np.linalg.inv(grid.affine)
    out = np.zeros(grid.shape, dtype=scheme.to_values(np.zeros(1, dtype=np.int64)).dtype)
    for frame, group in zip(frames, ds.PerFrameFunctionalGroupsSequence):
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        position = [float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient]
        ijk = inverse @ (_LPS_TO_RAS @ np.array([*position, 1.0]))
        k = round(float(ijk[2]))
        if not (np.allclose(ijk[:2], 0, atol=1e-2) and 0 <= k < grid.shape[2]):
            raise InputError(f"{seg_path}: a frame at {position} mm does not lie on the given grid")
        out[:, :, k][frame.T > 0] = scheme.values[number]
    return grid.with_array(out)
