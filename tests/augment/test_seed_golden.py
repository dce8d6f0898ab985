"""The same seed draws the same augmentation as before the split of ``augment.py`` (issue #18), on any CPU.

The reference numbers of ``GOLDEN`` were computed with the single-file ``augment.py`` of main at 3859d5d on a
small synthetic sample; issue #22 redefined the "strong" preset, so the former one is built here from its
transforms (``former_strong``) and still checked against them. ``GOLDEN_22`` holds the ops added by issue #22
(blur, simulated low resolution, contrast, brightness, inverted gamma) and the new "strong", computed with the
package when they were added, so any later change of what a seed draws for them shows up here. What a seed
draws is exact on every CPU (torch's generators and Python float arithmetic), so the parameters logged (JSON
of the typed records) are hashed and compared exactly. The outputs are float32 interpolations, powers and
Gaussian noise, whose last bits depend on the CPU's SIMD kernels (try ``ATEN_CPU_CAPABILITY=default``), so
each output is reduced to a fingerprint -- its sum, its sum of squares and two fixed projections -- compared
with a tolerance derived from float32 rounding (see ``_tolerance``).

Regenerate only for an intended change of behaviour, from the module that defines the reference:
``git show 3859d5d:src/medseg3d/augment.py > /tmp/old_augment.py``, then
``python tests/augment/test_seed_golden.py /tmp/old_augment.py`` (no argument: the current package, which
also prints ``GOLDEN_22``).
"""

import hashlib
import importlib.util
import json
import sys

import pytest
import torch

from medseg3d import augment as A

SPATIAL = {"3d": (12, 14, 10), "2d": (20, 18)}


def _former_strong(aug):
    """The "strong" preset before issue #22, from its transforms (which exist unchanged in both modules)."""
    return aug.Compose(
        [
            aug.RandomFlip(p=0.5),
            aug.RandomRotateScale(max_angle=180.0, p_rotation=0.5, scale_range=(0.7, 1.4), p_scale=0.5),
            aug.RandomIntensity(scale_range=(0.75, 1.25), shift_range=(-0.2, 0.2), p=0.5),
            aug.RandomGamma(gamma_range=(0.6, 1.7), p=0.5),
            aug.RandomNoise(std_range=(0.0, 0.1), p=0.2),
        ]
    )


SEEDS = (0, 1, 2, 3)
OUTPUTS = ("image", "labels", "regions", "matrix")
TRANSFORMS = {
    "flip": lambda aug: aug.RandomFlip(p=0.5),
    "rotation": lambda aug: aug.RandomRotation(max_angle=30, p=1.0),
    "rotation_all": lambda aug: aug.RandomRotation(p=1.0, plane="all"),
    "scale_aniso": lambda aug: aug.RandomScale((0.85, 1.15), p=1.0, isotropic=False),
    "rotate_scale_linear_labels": lambda aug: aug.RandomRotateScale(
        max_angle=40, p_rotation=1.0, scale_range=(0.8, 1.2), p_scale=1.0, label_order=1
    ),
    "intensity": lambda aug: aug.RandomIntensity(p=1.0),
    "gamma": lambda aug: aug.RandomGamma((0.7, 1.5), p=1.0),
    "noise": lambda aug: aug.RandomNoise((0.05, 0.1), p=1.0),
    "preset_none": lambda aug: aug.build_augment("none"),
    "preset_paper": lambda aug: aug.build_augment("paper"),
    "preset_default": lambda aug: aug.build_augment("default"),
    "former_strong": _former_strong,
}
# The ops of issue #22, drawn with p=1 so every seed applies them, and the strong preset they make up.
TRANSFORMS_22 = {
    "blur": lambda aug: aug.RandomBlur((0.5, 1.0), p=1.0, p_per_channel=0.5),
    "low_resolution": lambda aug: aug.RandomLowResolution((1.0, 2.0), p=1.0, p_per_channel=0.5),
    "contrast": lambda aug: aug.RandomContrast((0.75, 1.25), p=1.0),
    "brightness": lambda aug: aug.RandomBrightness((0.75, 1.25), p=1.0),
    "gamma_inverted": lambda aug: aug.RandomGamma((0.7, 1.5), p=1.0, invert=True),
    "preset_strong": lambda aug: aug.build_augment("strong"),
}
# Blur and low resolution are weighted sums of neighbours like an interpolation, so they get its tolerance.
NOT_INTERPOLATED = {
    "flip",
    "intensity",
    "gamma",
    "noise",
    "preset_none",
    "contrast",
    "brightness",
    "gamma_inverted",
}

# Projection weights: small integers from a seeded generator, exact on every CPU.
PROJECTIONS, MAX_WEIGHT = 2, 3
FINGERPRINT_ENTRIES = ("sum", "sum of squares", "projection 1", "projection 2")
EPS32, EPS64 = torch.finfo(torch.float32).eps, torch.finfo(torch.float64).eps
# Labels and region masks are integers picked by nearest-neighbour sampling (or by thresholding/argmax of a
# linear interpolation): a sample point within a few float32 roundings of a tie between two voxels (or of
# the 0.5 threshold) may go either way on another CPU. With ~30 eps of coordinate error per axis that has
# odds of ~1e-5 per value, ~0.2 expected flips over the <= 20,160 values of one output; allow 8.
FLIPPED_LABEL_VALUES = 8
# The 3x3 matrix: cos/sin (<= 1 ulp each) and products of up to three plane rotations and a scale.
MATRIX_ROUNDINGS = 16
# Stored references are rounded to 12 significant digits (relative error <= 5e-12).
STORED_RELATIVE = 1e-11


def _sample(spatial, channels=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn((channels, *spatial), generator=g)
    label = torch.tensor([0, 1, 2, 4])[torch.randint(4, spatial, generator=g)]
    for axis in range(len(spatial)):
        image.narrow(axis + 1, 0, 2).zero_()
        label.narrow(axis, 0, 2).zero_()
    regions = torch.stack([label > 0, label >= 2, label == 4]).float()
    return image, label, regions


def _plain(params) -> tuple[list[dict], list[float]]:
    """The records as JSON-able dicts without their matrix (derived from the angles through cos/sin, which
    may differ in the last bit across CPUs: it is fingerprinted instead), and the matrix entries."""
    records = [dict(p) for p in params] if isinstance(params, list) else [dict(params)]
    matrix = [float(v) for r in records for row in r.pop("matrix", []) for v in row]
    return records, matrix


def _fingerprint(values: torch.Tensor) -> list[float]:
    """Sum, sum of squares and projections (the sums alone cannot see a flip: they ignore voxel order)."""
    x = values.detach().double().flatten()
    g = torch.Generator().manual_seed(18)
    weights = torch.randint(-MAX_WEIGHT, MAX_WEIGHT + 1, (PROJECTIONS, x.numel()), generator=g).double()
    return [float(x.sum()), float((x * x).sum()), *(float(v) for v in weights @ x)]


def _outputs(aug, name: str, dims: str, transforms: dict = TRANSFORMS) -> dict:
    """Parameters digest and per-output fingerprints, each over the four seeds, for every label target."""
    image, label, regions = _sample(SPATIAL[dims])
    result = {}
    for target, lab in (("labels", label), ("regions", regions), ("none", None)):
        images, labels, records, matrix = [], [], [], []
        for seed in SEEDS:
            out, lab_out, params = transforms[name](aug)(image, lab, torch.Generator().manual_seed(seed))
            plain, entries = _plain(params)
            images.append(out.flatten())
            labels.append(lab_out.flatten() if lab_out is not None else torch.zeros(0))
            records.append(plain)
            matrix += entries
        result[target] = {
            "params": hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()[:12],
            "image": torch.cat(images),
            target: torch.cat(labels),
            "matrix": torch.tensor(matrix, dtype=torch.float64),
        }
    return result


def _inverse_outputs(aug) -> dict:
    image, label, _ = _sample((12, 12, 12))
    _, _, applied = _former_strong(aug)(image, label, torch.Generator().manual_seed(5))
    inverse = aug.invert_geometry(applied)
    back, back_label = aug.apply_params(image, label, inverse)
    plain, entries = _plain(inverse)
    digest = hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:12]
    return {"params": digest, "image": back, "labels": back_label, "matrix": torch.tensor(entries).double()}


def _tolerance(kind: str, values: torch.Tensor, interpolated_size: int) -> list[float]:
    """Largest CPU-to-CPU difference of each fingerprint entry (sum, sum of squares, projections)."""
    n, top = values.numel(), float(values.abs().max()) if values.numel() else 0.0
    if kind in ("labels", "regions"):  # each flipped value moves the sums by at most top (top**2)
        per_flip = [top, top * top] + [top * MAX_WEIGHT] * PROJECTIONS
        return [FLIPPED_LABEL_VALUES * t for t in per_flip]
    if kind == "matrix":
        delta = MATRIX_ROUNDINGS * EPS64 * top
    else:
        # One float32 output voxel: ~8 roundings (the input's Box-Muller noise in SIMD, the power / noise /
        # scale ops, the weighted sum of an interpolation). An interpolated voxel's sample point also carries
        # a few roundings of a coordinate up to size/2 voxels (~2 * size/2 * eps voxels), and moving a linear
        # interpolant by s voxels changes it by at most 2 * s * top (neighbours differ by at most 2 * top).
        delta = (8 + 2 * interpolated_size) * EPS32 * top
    # Every voxel off by delta, all in the same direction: the worst case of each sum.
    return [n * delta, n * delta * (2 * top + delta)] + [n * delta * MAX_WEIGHT] * PROJECTIONS


def _check(key: str, kind: str, values: torch.Tensor, expected: list[float], interpolated_size: int) -> None:
    actual = _fingerprint(values)
    tol = _tolerance(kind, values, interpolated_size)
    for what, a, e, t in zip(FINGERPRINT_ENTRIES, actual, expected, tol):
        assert abs(a - e) <= t + STORED_RELATIVE * abs(e), f"{key} {kind} {what}: {a!r} != {e!r} +- {t:.3g}"


def _check_golden(key: str, golden: dict, transforms: dict) -> None:
    name, dims = key.split("/")
    params, image, labels, regions, matrix = golden[key]
    expected = {"image": image, "labels": labels, "regions": regions, "matrix": matrix}
    interpolated_size = 0 if name in NOT_INTERPOLATED else max(SPATIAL[dims])
    for target, outputs in _outputs(A, name, dims, transforms).items():
        assert outputs["params"] == params, f"{key}/{target}: other parameters drawn"
        for kind in ("image", target, "matrix"):
            if kind != "none":
                _check(f"{key}/{target}", kind, outputs[kind], expected[kind], interpolated_size)


@pytest.mark.parametrize("key", sorted(f"{n}/{d}" for n in TRANSFORMS for d in SPATIAL))
def test_same_seed_same_output_as_before_the_split(key):
    _check_golden(key, GOLDEN, TRANSFORMS)


@pytest.mark.parametrize("key", sorted(f"{n}/{d}" for n in TRANSFORMS_22 for d in SPATIAL))
def test_same_seed_same_output_as_when_the_issue_22_ops_were_added(key):
    _check_golden(key, GOLDEN_22, TRANSFORMS_22)


def test_inverse_of_logged_params_same_as_before_the_split():
    params, image, labels, matrix = GOLDEN_INVERSE
    outputs = _inverse_outputs(A)
    assert outputs["params"] == params
    for kind, expected in (("image", image), ("labels", labels), ("matrix", matrix)):
        _check("inverse", kind, outputs[kind], expected, interpolated_size=12)


# fmt: off
# key: (params digest, fingerprints (sum, sum of squares, 2 projections) of image, labels, regions, matrix)
GOLDEN = {
    "flip/3d": ("97288f6e5a2a", (99.3773115906, 8007.45907792, -411.393929528, -312.799495775),
        (6880, 20912, 30, 522), (5876, 5876, 172, 50),
        (0, 0, 0, 0)),
    "flip/2d": ("75c507b3ecb9", (58.9187539325, 2481.88489445, 42.0043565113, -179.86295952),
        (1908, 5292, -24, -34), (1688, 1688, 7, 159),
        (0, 0, 0, 0)),
    "rotation/3d": ("6ea46fafdd10", (140.010187541, 3232.84425739, -185.054280438, 273.072204423),
        (6464, 19672, -75, 5), (5518, 5518, 231, 70),
        (11.4505434662, 12, -9.92313544115, 9.23317586744)),
    "rotation/2d": ("516f589a1bc7", (38.0351028924, 1016.47128557, -4.35567543219, -1.77636346122),
        (1795, 5003, 209, -36), (1585, 1585, 45, 101),
        (7.45054346619, 8, -8.70235686223, -7.89649693632)),
    "rotation_all/3d": ("860019d77afc", (78.8973643022, 1986.8833391, -73.0226548383, 44.7117047681),
        (6073, 18693, 453, 434), (5166, 5166, 13, 101),
        (-0.908359615402, 12, -13.6037494266, -0.0102586831476)),
    "rotation_all/2d": ("4cca84e6a547", (37.3198035695, 1009.23204123, -38.9539027336, 25.8691918991),
        (1808, 5042, -97, 14), (1596, 1596, -16, 131),
        (0.977441289743, 8, 0.139508345969, 1.35233354182)),
    "scale_aniso/3d": ("a8138288c9a3", (121.086889701, 2845.27680987, -33.1870850014, 221.415576134),
        (6595, 20155, -60, 230), (5620, 5620, -12, -101),
        (12, 12, -9, 11)),
    "scale_aniso/2d": ("283a86600f32", (55.378224415, 1102.27503635, -100.234176944, -51.438568245),
        (1741, 4835, 155, -72), (1541, 1541, 75, 101),
        (8, 8, -7, -5)),
    "rotate_scale_linear_labels/3d": ("493116fec85f",
        (161.583528612, 1977.37541965, -49.458599487, 155.910602425),
        (5899, 17809, -56, 188), (4699, 4699, 208, -112),
        (11.033176549, 12, -9.86797833797, 8.59601482271)),
    "rotate_scale_linear_labels/2d": ("f177ec5e2932",
        (38.9089986578, 993.612494098, -1.13063244196, 67.6821923227),
        (1743, 4859, 107, -38), (1510, 1510, -11, 137),
        (7.03317654901, 8, -9.08650232719, -8.53636242873)),
    "intensity/3d": ("4eeb9ff042c5", (223.477700396, 7812.29221434, -55.6338199726, 185.140200148),
        (6880, 20912, 29, 118), (5876, 5876, -30, -128),
        (0, 0, 0, 0)),
    "intensity/2d": ("4eeb9ff042c5", (97.9327757834, 2447.54174379, -173.477861622, -95.9061903385),
        (1908, 5292, 160, -153), (1688, 1688, 80, 46),
        (0, 0, 0, 0)),
    "gamma/3d": ("fd600ba2c01a", (-412.020555019, 10146.8310797, 36.8598909378, 305.867447853),
        (6880, 20912, 29, 118), (5876, 5876, -30, -128),
        (0, 0, 0, 0)),
    "gamma/2d": ("fd600ba2c01a", (-77.3082588911, 2959.87677601, -182.431587815, -54.4662245512),
        (1908, 5292, 160, -153), (1688, 1688, 80, 46),
        (0, 0, 0, 0)),
    "noise/3d": ("e9019cbfd36c", (94.8033889506, 8034.92961009, -59.0144774844, 219.549907812),
        (6880, 20912, 29, 118), (5876, 5876, -30, -128),
        (0, 0, 0, 0)),
    "noise/2d": ("e9019cbfd36c", (58.6269225769, 2485.39361325, -173.689459627, -88.6201867152),
        (1908, 5292, 160, -153), (1688, 1688, 80, 46),
        (0, 0, 0, 0)),
    "preset_none/3d": ("453a39b98df6", (99.3773115906, 8007.45907792, -46.8863774388, 207.876267595),
        (6880, 20912, 29, 118), (5876, 5876, -30, -128),
        (0, 0, 0, 0)),
    "preset_none/2d": ("453a39b98df6", (58.9187539325, 2481.88489445, -179.003791949, -89.5949536842),
        (1908, 5292, 160, -153), (1688, 1688, 80, 46),
        (0, 0, 0, 0)),
    "preset_paper/3d": ("0a0d008fea75", (94.3980817954, 6813.93486842, -3.87934190145, -35.8019781518),
        (6802, 20708, 181, 154), (5807, 5807, 264, -192),
        (0.476132035197, 3, -3.58558746857, 3.45403955185)),
    "preset_paper/2d": ("ebf756aa9107", (46.0623107348, 2116.72058858, -149.75738933, 11.648539179),
        (1881, 5227, -101, -161), (1663, 1663, -13, 169),
        (-0.523867964803, 2, -1.22701977593, 1.48895375833)),
    "preset_default/3d": ("f14bc65be946", (936.548218024, 6863.35655208, -369.90577889, -355.949859214),
        (6741, 20517, 181, 479), (5754, 5754, 146, 69),
        (5.8293991321, 6, -6.5327690983, -1.39324172115)),
    "preset_default/2d": ("4cf0eb2398b6", (105.060686584, 1790.15710133, -105.841936061, -151.997073564),
        (1945, 5371, -16, -133), (1725, 1725, -7, 134),
        (3.76750734559, 4, -1.58419872416, -5.41580127584)),
    "former_strong/3d": ("ba0a9b0e213b", (2183.40606595, 6074.72811029, -269.703851756, -141.957844174),
        (6218, 18948, 138, 222), (5304, 5304, 113, -19),
        (1.60082128251, 6, -0.950782897413, 1.53594209801)),
    "former_strong/2d": ("24e085133542", (111.042856025, 1409.49897579, -22.4805546151, -56.8255625898),
        (1896, 5236, 106, -107), (1681, 1681, -66, 122),
        (4.89820399509, 6, -1.81576128806, -5.3605238254)),
}
GOLDEN_INVERSE = ("26b9c3656902", (-5.88709036841, 873.671094135, 18.3358047456, -5.68235589999),
    (1749, 5337, -144, -41), (2.91516423225, 3.00000007218, -5.92342880368, -1.49148541689))
# Computed with the package at issue #22 (no argument), when these ops were added.
GOLDEN_22 = {
    "blur/3d": ("972308688b23", (83.1906187654, 2288.3099795, -94.7614983878, 82.9498604092),
        (6880, 20912, 29, 118), (5876, 5876, -30, -128),
        (0, 0, 0, 0)),
    "blur/2d": ("972308688b23", (51.2325912514, 897.21388223, -121.492474147, -111.958985149),
        (1908, 5292, 160, -153), (1688, 1688, 80, 46),
        (0, 0, 0, 0)),
    "low_resolution/3d": ("6bedfb2033cd", (199.386031052, 3973.33065378, -142.127406768, 106.507336053),
        (6880, 20912, 29, 118), (5876, 5876, -30, -128),
        (0, 0, 0, 0)),
    "low_resolution/2d": ("6bedfb2033cd", (90.4347843292, 1514.953043, -107.086945999, -154.416590897),
        (1908, 5292, 160, -153), (1688, 1688, 80, 46),
        (0, 0, 0, 0)),
    "contrast/3d": ("80ef2aa3bdcb", (98.5381613942, 8073.46034138, -77.2580276877, 224.959393091),
        (6880, 20912, 29, 118), (5876, 5876, -30, -128),
        (0, 0, 0, 0)),
    "contrast/2d": ("80ef2aa3bdcb", (57.9145587943, 2529.68879004, -197.856257235, -113.08317831),
        (1908, 5292, 160, -153), (1688, 1688, 80, 46),
        (0, 0, 0, 0)),
    "brightness/3d": ("d011d86873b8", (81.9057575951, 7561.761443, -54.0574988005, 186.581094352),
        (6880, 20912, 29, 118), (5876, 5876, -30, -128),
        (0, 0, 0, 0)),
    "brightness/2d": ("d011d86873b8", (58.1370525189, 2392.51247579, -172.206535761, -104.685502748),
        (1908, 5292, 160, -153), (1688, 1688, 80, 46),
        (0, 0, 0, 0)),
    "gamma_inverted/3d": ("d0a505909944", (714.411424756, 9615.77145203, -147.62305367, 130.239717841),
        (6880, 20912, 29, 118), (5876, 5876, -30, -128),
        (0, 0, 0, 0)),
    "gamma_inverted/2d": ("d0a505909944", (225.858328104, 2916.78009237, -184.560405254, -134.61905086),
        (1908, 5292, 160, -153), (1688, 1688, 80, 46),
        (0, 0, 0, 0)),
    "preset_strong/3d": ("4761f2955070", (748.156839274, 2429.17343617, -4.9568482388, -56.1463378653),
        (7255, 22081, 669, -39), (6193, 6193, 438, -1),
        (8.75774756061, 9, -6.72081393547, 2.47940859535)),
    "preset_strong/2d": ("1fba23d3600d", (208.615822903, 1013.38425081, -25.2372441264, -81.7864423976),
        (1937, 5373, 217, -167), (1714, 1714, -12, 56),
        (5.75774756061, 6, -1.35462691568, -8.28558567343)),
}
# fmt: on


def _numbers(values: torch.Tensor) -> str:
    return "(" + ", ".join(f"{v:.12g}" for v in _fingerprint(values)) + ")"


def _print_golden(module, transforms: dict, dict_name: str) -> None:
    print(f"{dict_name} = {{")
    for name in transforms:
        for dims in SPATIAL:
            outs = _outputs(module, name, dims, transforms)
            assert len({o["params"] for o in outs.values()}) == 1, "the label target changed the draws"
            labels, regions = outs["labels"], outs["regions"]
            head = f'    "{name}/{dims}": ("{labels["params"]}",'
            image = _numbers(labels["image"])
            print(f"{head} {image}," if len(head) + len(image) < 109 else f"{head}\n        {image},")
            print(f"        {_numbers(labels['labels'])}, {_numbers(regions['regions'])},")
            print(f"        {_numbers(labels['matrix'])}),")
    print("}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    module = A
    if len(sys.argv) > 1:  # the reference: the single-file augment.py of 3859d5d, loaded from a path
        spec = importlib.util.spec_from_file_location("reference_augment", sys.argv[1])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    print("# fmt: off")
    _print_golden(module, TRANSFORMS, "GOLDEN")
    inv = _inverse_outputs(module)
    print(f'GOLDEN_INVERSE = ("{inv["params"]}", {_numbers(inv["image"])},')
    print(f"    {_numbers(inv['labels'])}, {_numbers(inv['matrix'])})")
    if module is A:
        _print_golden(module, TRANSFORMS_22, "GOLDEN_22")
    print("# fmt: on")
