"""Registration with SimpleITK's framework: rigid co-registration of sequences, rigid or affine alignment to
the template.

Both use Mattes mutual information (so images of different contrast can be matched), a regular-step gradient
descent with physical-shift scales, and two or three resolution levels. The images are first put on isotropic
grids (3 mm for co-registration, 2 mm for the template) so that thick slices do not make the coarse levels
degenerate. Results are 4x4 LPS point maps (see :mod:`medseg3d.raw.geometry`): from the fixed image's space
into the moving image's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..io import Volume
from .geometry import covering_grid, resample, sitk_to_matrix, volume_to_sitk


@dataclass
class Registration:
    """A fitted map: ``matrix`` takes fixed-space points (LPS mm) to moving-space points."""

    matrix: np.ndarray
    metric: float  # final Mattes MI value (negative: lower is better)
    iterations: int
    kind: str

    def to_dict(self) -> dict:
        """The fit as a JSON-ready dict (kind, LPS matrix to 6 decimals, metric, iterations)."""
        return {
            "kind": self.kind,
            "matrix_lps": np.round(self.matrix, 6).tolist(),
            "metric": round(self.metric, 5),
            "iterations": self.iterations,
        }


def isotropic(volume: Volume, spacing: float = 2.0, order: int = 1) -> Volume:
    """``volume`` resampled onto an isotropic grid of its own orientation and field of view.

    Args:
        volume: a 3D volume.
        spacing: the voxel size in mm.
        order: interpolation (0 nearest, 1 trilinear, 3 B-spline).
    """
    import nibabel as nib

    shape, affine = covering_grid(
        volume.shape, volume.affine, tuple(nib.aff2axcodes(volume.affine)), (spacing,) * 3
    )
    return Volume(resample(volume, shape, affine, order=order), affine)


def _method(
    levels: tuple[int, ...], sigmas_mm: tuple[float, ...], iterations: int, sampling: float, seed: int
):
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    # SimpleITK reads a seed of 0 as "seed from the wall clock" (sitkWallClock): every run would sample other
    # points and fit another transform. Our seeds start at 0, so the sampler gets seed + 1: the same every
    # run.
    reg.SetMetricSamplingPercentage(sampling, seed + 1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0,
        minStep=1e-3,
        numberOfIterations=iterations,
        relaxationFactor=0.6,
        gradientMagnitudeTolerance=1e-6,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(levels))
    reg.SetSmoothingSigmasPerLevel(list(sigmas_mm))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return reg


# What ITK's registration errors say about the input (ITK's own words, matched case-insensitively), and
# what to do; anything else is read as "no fit found".
_ITK_PROBLEMS = (
    (
        ("samples map outside moving image buffer",),
        (
            "the two scans hardly overlap in space (their positions in the scanner's coordinates are far "
            "apart); check that they come from one study and that their headers keep the scanner's "
            "positions, or give scans already on one grid (--preprocess resample)"
        ),
    ),
    (
        (
            "joint pdf summed to zero",
            "the joint pdf",
        ),
        "one scan holds no contrast where the two overlap (empty, constant or a mask); check the files",
    ),
)


def _input_problem(itk_message: str) -> str:
    text = itk_message.lower()
    for needles, problem in _ITK_PROBLEMS:
        if any(n in text for n in needles):
            return problem
    return (
        "no alignment was found between the scans; check that they show the same head, or give scans "
        "already on one grid (--preprocess resample)"
    )


def _run(reg, fixed, moving, what: str):
    """Fit in one thread: with several, ITK adds per-thread partial sums in varying order and the same input
    can end up to 1e-3 away; with one, the same map bit for bit, and no slower on 2 cores (docs/raw.md)."""
    import SimpleITK as sitk

    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)  # the pyramid's filters too, not only the metric
    reg.SetNumberOfThreads(1)
    try:
        transform = reg.Execute(fixed, moving)
    except RuntimeError as exc:  # ITK's text (addresses, class names) stays in the chained exception
        raise InputError(f"{what} failed: {_input_problem(str(exc))}") from exc
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    return transform, float(reg.GetMetricValue()), int(reg.GetOptimizerIteration())


def rigid(
    fixed: Volume,
    moving: Volume,
    *,
    seed: int = 0,
    fixed_mask: Volume | None = None,
    spacing: float = 3.0,
    levels: tuple[int, ...] = (2, 1),
    sampling: float = 0.2,
    what: str = "co-registration",
) -> Registration:
    """Rigid map from ``fixed``'s space to ``moving``'s, started at the identity.

    Sequences of one session share the scanner's coordinates, so the identity is the right start; the fit
    corrects motion between them. Both images go through a 3 mm isotropic grid first (a fraction of the time
    of 2 mm, measured: docs/raw.md, "Figures quoted by the code"; for sub-millimetre accuracy:
    tests/raw/test_register.py).

    Args:
        fixed, moving: 3D volumes.
        seed: the seed of the metric's random voxel sampling.
        fixed_mask: where the metric is evaluated, on ``fixed``'s grid (None: everywhere).
        spacing: the isotropic grid's voxel size in mm.
        levels: the shrink factors of the resolution pyramid, coarse first.
        sampling: the fraction of voxels the metric samples.
        what: the step's name in an error (e.g. ``"co-registration of t2 to t1ce"``).

    Returns:
        The fitted Registration (fixed LPS points -> moving LPS points, Mattes MI metric, iterations).

    Raises:
        InputError: the fit fails, in one line saying what about the scans makes it fail and what to do.
    """
    import SimpleITK as sitk

    f = volume_to_sitk(isotropic(fixed, spacing))
    m = volume_to_sitk(isotropic(moving, spacing))
    sigmas = tuple(spacing * (lv - 1) for lv in levels)
    reg = _method(levels, sigmas, 200, sampling, seed)
    if fixed_mask is not None:
        reg.SetMetricFixedMask(sitk.Cast(volume_to_sitk(fixed_mask) > 0.5, sitk.sitkUInt8))
    start = sitk.Euler3DTransform()
    centre = np.asarray(f.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in f.GetSize()]))
    start.SetCenter(tuple(float(c) for c in centre))
    reg.SetInitialTransform(start, inPlace=False)
    transform, metric, iters = _run(reg, f, m, what)
    return Registration(sitk_to_matrix(transform), metric, iters, "rigid")


def _centroid_lps(volume: Volume, mask: np.ndarray) -> np.ndarray:
    idx = np.argwhere(mask).mean(axis=0)
    ras = volume.affine[:3, :3] @ idx + volume.affine[:3, 3]
    return ras * np.array([-1.0, -1.0, 1.0])


TEMPLATE_FITS = ("rigid", "affine")


def to_template(
    template_image: Volume,
    template_brain: Volume,
    brain: Volume,
    brain_mask: np.ndarray,
    *,
    kind: str = "rigid",
    seed: int = 0,
) -> Registration:
    """Map from template space to the space of ``brain`` (a brain-normalised image), rigid or affine.

    Both start from the translation that lays the brain's centre of mass on the template's and fit at three
    resolutions. ``rigid`` (rotation and translation) keeps the brain's size, as BraTS data do (measured:
    docs/raw.md#why-the-raw-path-scores-lower-against-the-fusion-than-the-brainlesion-files-do-session-15);
    ``affine`` fits a similarity (one scale) and then the full affine, which brings every brain to the
    template's size and shape.

    Args:
        template_image, template_brain: the template's image and brain probability (2 mm grid).
        brain: the case's brain-normalised image.
        brain_mask: the case's boolean brain mask, on ``brain``'s grid.
        kind: "rigid" or "affine" (:data:`TEMPLATE_FITS`).
        seed: the seed of the metric's random voxel sampling.

    Returns:
        The Registration (template LPS points -> the case's LPS points).

    Raises:
        InputError: an unknown ``kind``, or the fit fails.
    """
    import SimpleITK as sitk

    if kind not in TEMPLATE_FITS:
        raise InputError(f"the template fit must be one of {', '.join(TEMPLATE_FITS)}, got {kind!r}")
    fixed = volume_to_sitk(template_image)
    moving = volume_to_sitk(isotropic(brain, 2.0))
    fixed_mask = sitk.Cast(
        sitk.BinaryDilate(sitk.Cast(volume_to_sitk(template_brain) > 0.5, sitk.sitkUInt8), [3, 3, 3]),
        sitk.sitkUInt8,
    )
    c_fixed = _centroid_lps(template_brain, template_brain.array > 0.5)
    c_moving = _centroid_lps(brain, brain_mask)
    start = sitk.Euler3DTransform() if kind == "rigid" else sitk.Similarity3DTransform()
    start.SetCenter(tuple(float(v) for v in c_fixed))
    start.SetTranslation(tuple(float(v) for v in c_moving - c_fixed))
    reg = _method((4, 2), (4.0, 2.0), 200, 0.2, seed)
    reg.SetMetricFixedMask(fixed_mask)
    reg.SetInitialTransform(start, inPlace=False)
    first, _, it1 = _run(
        reg, fixed, moving, f"atlas registration ({'rigid' if kind == 'rigid' else 'similarity'})"
    )
    matrix = sitk_to_matrix(first)
    second = sitk.Euler3DTransform() if kind == "rigid" else sitk.AffineTransform(3)
    second.SetCenter(tuple(float(v) for v in c_fixed))
    second.SetMatrix(tuple(float(v) for v in matrix[:3, :3].ravel()))
    second.SetTranslation(tuple(float(v) for v in matrix[:3, 3] + matrix[:3, :3] @ c_fixed - c_fixed))
    reg = _method((2, 1), (2.0, 0.0), 150, 0.15, seed)
    reg.SetMetricFixedMask(fixed_mask)
    reg.SetInitialTransform(second, inPlace=False)
    final, metric, it2 = _run(reg, fixed, moving, f"atlas registration ({kind})")
    return Registration(sitk_to_matrix(final), metric, it1 + it2, kind)
