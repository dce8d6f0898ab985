"""The same seed draws the same augmentation, bit for bit, as before the split of ``augment.py`` (issue #18).

The hashes were computed on the single-file ``augment.py`` (main at 3859d5d) for a small synthetic sample;
the refactored package must reproduce them exactly: the parameters drawn (as JSON) and the output bytes.
Regenerate only for an intended change of behaviour: ``python tests/augment/test_seed_golden.py``.
"""

import hashlib
import json

import pytest
import torch

from medseg3d import augment as A


def _sample(spatial, channels=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn((channels, *spatial), generator=g)
    label = torch.tensor([0, 1, 2, 4])[torch.randint(4, spatial, generator=g)]
    for axis in range(len(spatial)):
        image.narrow(axis + 1, 0, 2).zero_()
        label.narrow(axis, 0, 2).zero_()
    regions = torch.stack([label > 0, label >= 2, label == 4]).float()
    return image, label, regions


def _digest(image, label, params) -> str:
    plain = [dict(p) for p in params] if isinstance(params, list) else dict(params)
    h = hashlib.sha256()
    h.update(json.dumps(plain, sort_keys=True).encode())
    h.update(image.contiguous().numpy().tobytes())
    if label is not None:
        h.update(label.contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


TRANSFORMS = {
    "flip": lambda: A.RandomFlip(p=0.5),
    "rotation": lambda: A.RandomRotation(max_angle=30, p=1.0),
    "rotation_all": lambda: A.RandomRotation(p=1.0, plane="all"),
    "scale_aniso": lambda: A.RandomScale((0.85, 1.15), p=1.0, isotropic=False),
    "rotate_scale_linear_labels": lambda: A.RandomRotateScale(
        max_angle=40, p_rotation=1.0, scale_range=(0.8, 1.2), p_scale=1.0, label_order=1
    ),
    "intensity": lambda: A.RandomIntensity(p=1.0),
    "gamma": lambda: A.RandomGamma((0.7, 1.5), p=1.0),
    "noise": lambda: A.RandomNoise((0.05, 0.1), p=1.0),
    "preset_none": lambda: A.build_augment("none"),
    "preset_paper": lambda: A.build_augment("paper"),
    "preset_default": lambda: A.build_augment("default"),
    "preset_strong": lambda: A.build_augment("strong"),
}
SPATIAL = {"3d": (12, 14, 10), "2d": (20, 18)}
SEEDS = (0, 1, 2, 3)


def _digests(name: str, dims: str, target: str) -> list[str]:
    image, label, regions = _sample(SPATIAL[dims])
    lab = {"labels": label, "regions": regions, "none": None}[target]
    out = []
    for seed in SEEDS:
        i, lab_out, params = TRANSFORMS[name]()(image, lab, torch.Generator().manual_seed(seed))
        out.append(_digest(i, lab_out, params))
    return out


def _inverse_digest() -> str:
    image, label, _ = _sample((12, 12, 12))
    _, _, applied = A.build_augment("strong")(image, label, torch.Generator().manual_seed(5))
    inverse = A.invert_geometry(applied)
    back, back_label = A.apply_params(image, label, inverse)
    return _digest(back, back_label, inverse)


GOLDEN = {  # one 12-hex-digit prefix of the digest per seed in SEEDS
    "flip/3d/labels": "dd46f9a65176 c0229c8947b6 e025fca0686d edaf619a70da",
    "flip/3d/regions": "f2632d009a46 b2e071527d74 4b9356852744 f20f2e24b8db",
    "flip/3d/none": "91efee332f9a 21ff78a4eed7 0be910a3e252 7ce7ece3bf01",
    "flip/2d/labels": "20572d3c3a7b f1bf6954a68f e7bf4f7591d0 f1bf6954a68f",
    "flip/2d/regions": "39cdcd727f76 1085efd006b8 0a9ae9d83a7a 1085efd006b8",
    "flip/2d/none": "d75d044a5991 ee86214e177f 2fbf0803fd66 ee86214e177f",
    "rotation/3d/labels": "dc9df37109f3 3965d8a86025 300786e4f0fd 6da7fc0bef5d",
    "rotation/3d/regions": "b7f78c42e627 5977efd6ec2b 370196aef4e2 1c7b9e848d5f",
    "rotation/3d/none": "19fff0d98e64 efc15e670fe9 d54048ffd2b1 9075bb0713a6",
    "rotation/2d/labels": "434c6af163ca 8606d117a71b bd09c77dd9bf 53df0f72c010",
    "rotation/2d/regions": "575fa0f1030e bf9081f7a02d 1a0cd2dadd02 02bbd28dd4d3",
    "rotation/2d/none": "f81c1f9fe872 b93e3c1d7b9f c7f1c3c2d69f 8baba980a8fd",
    "rotation_all/3d/labels": "9a236078e405 51f1a3b9482d b87776e972a7 c39985809029",
    "rotation_all/3d/regions": "0260b7a69e65 6520fda614c9 6bf594d7686f afb540511ff9",
    "rotation_all/3d/none": "379dd0721f63 6b6f687939cc 660e1ae0a5f3 34a70666f728",
    "rotation_all/2d/labels": "3c48658b26c2 a8197a3f94ce 8fde76ba797c e41f56913f25",
    "rotation_all/2d/regions": "cd8210de4cbf f19085f427fe 7ec15e8f8ec3 22c0c477961c",
    "rotation_all/2d/none": "9d4a00fa4e66 cc89fe7e52c7 eb483a06c428 df4529275c05",
    "scale_aniso/3d/labels": "1c2b4f0902b1 1aeda632f8bc f93184cafd77 c53a0577d1fe",
    "scale_aniso/3d/regions": "14555a2d145f a76ee533aea8 e8fd06155d31 a6a58c740b74",
    "scale_aniso/3d/none": "718888b4d5d2 e56a32d54cfd b67a22f587f0 e7b5e87c0584",
    "scale_aniso/2d/labels": "13962dc65e86 c5774ca21b1d add0d39d2b0f 70ea32b08faf",
    "scale_aniso/2d/regions": "641447874495 4eafe08f2a1a 5a98e8b0c704 661a1c819cb6",
    "scale_aniso/2d/none": "63d2962f991d 9ad9d3fb119e 362f2080ef5c fb3b78e62072",
    "rotate_scale_linear_labels/3d/labels": "bc7576963df9 23d324b9c060 25cfa652f033 f833517d50c4",
    "rotate_scale_linear_labels/3d/regions": "f26ec27094d7 3e65e4da3ef7 e5483a3f457d 422c85e79d5b",
    "rotate_scale_linear_labels/3d/none": "a1c5b37459b1 35780dd2ea11 fd9f71a0c104 f38a95563ef0",
    "rotate_scale_linear_labels/2d/labels": "cfb0645bfbcf 5a5535c07434 0c69f4e55df6 6dae6f3eab72",
    "rotate_scale_linear_labels/2d/regions": "6ceb492b2062 cb9c721fa803 1f3d7f79df3e 0fb4629dd475",
    "rotate_scale_linear_labels/2d/none": "b2038b062698 d2c3e91fbdb1 e35d384ed48a 5546186833d7",
    "intensity/3d/labels": "5666ca6cb490 f81749cdd94c a616d25487fd d1ae4c390f2a",
    "intensity/3d/regions": "9a1cc10f0f0e 8955e38e3872 563ffcb1fdff 23b849c63ac5",
    "intensity/3d/none": "0b8ce02bd214 278d51a9591d bdb117454f7c 87e2781c6b42",
    "intensity/2d/labels": "01a33a4ed5dc 5440e3959f9b 01b607fbb6d9 32396164c5a7",
    "intensity/2d/regions": "98f2025783cb c28d16715c7d 3c9906c128a1 b73877a022d6",
    "intensity/2d/none": "0dc8fd39a31c c91ea06fb464 feb11150eb9c 3abea09ad214",
    "gamma/3d/labels": "ea00948b5967 1c58ec13d87d 796e3e5a0756 42187be10f1f",
    "gamma/3d/regions": "0bf9c5e28c07 3979366a0388 e16f22421d9c 18269be49e4f",
    "gamma/3d/none": "bedb58200eda fca03245f977 cbe962d1442c e5d33cf7de12",
    "gamma/2d/labels": "634d0f02ff5c 995992d3b2c8 3210a418bb8b 9c53ac6c3747",
    "gamma/2d/regions": "bbfcd1b7f0d7 5d6a1c371a2c b9449175762a 1480ab38c173",
    "gamma/2d/none": "05e056cf3331 9333c8566cb4 797751c7c2b0 dc5f46061f3a",
    "noise/3d/labels": "8e0516e4f55d d994e47723a1 b0b82409fa9e cd2d7aa933f7",
    "noise/3d/regions": "f370e07a0923 e4b21b6af7ae 3b2e2b5adfe1 230b78a1d4c3",
    "noise/3d/none": "05f31c392770 3a06da80343a c7fda3b3a2d6 9422cd88dca9",
    "noise/2d/labels": "a7863dfe7cce 456ea3c282e1 3999a861e13c 58436e8a03a2",
    "noise/2d/regions": "5b31ab325bc9 7a1e2ee156cd 391475a1a593 8df1142dba4f",
    "noise/2d/none": "6db33b211b60 1ce6ce3ba4ba 981a8014285d 51cbc763dc26",
    "preset_none/3d/labels": "6e9312b078b0 6e9312b078b0 6e9312b078b0 6e9312b078b0",
    "preset_none/3d/regions": "274086d6d3e5 274086d6d3e5 274086d6d3e5 274086d6d3e5",
    "preset_none/3d/none": "d44d63f353e9 d44d63f353e9 d44d63f353e9 d44d63f353e9",
    "preset_none/2d/labels": "02b4a7c1d7dc 02b4a7c1d7dc 02b4a7c1d7dc 02b4a7c1d7dc",
    "preset_none/2d/regions": "24d30bc81e08 24d30bc81e08 24d30bc81e08 24d30bc81e08",
    "preset_none/2d/none": "ba312c887c62 ba312c887c62 ba312c887c62 ba312c887c62",
    "preset_paper/3d/labels": "66e687795f20 ab0261797bbc 6e9312b078b0 2313b68ecc11",
    "preset_paper/3d/regions": "ab2d753c5fce 9b64111c5e0a 274086d6d3e5 e3e46a7be529",
    "preset_paper/3d/none": "582ea144037c 131aadac2a83 d44d63f353e9 b552262c3338",
    "preset_paper/2d/labels": "97b8b35cbdf7 fceac6255a6b 02b4a7c1d7dc f74b89130112",
    "preset_paper/2d/regions": "13053786fbac 40bc44e65a5c 24d30bc81e08 61e2ce9622dc",
    "preset_paper/2d/none": "3e94d341432d 830c25ecc1d7 ba312c887c62 e193ca101f1a",
    "preset_default/3d/labels": "421aef00a696 446fed86ab73 71292b10b439 776fa8613a1c",
    "preset_default/3d/regions": "80aa4eb887a3 74ecea63b019 58d6042b0570 ebd9203a73b4",
    "preset_default/3d/none": "878581fc4175 8fe61bdb71d4 2100de486be7 b543c3744063",
    "preset_default/2d/labels": "02b4a7c1d7dc 4170d34279d2 fceac6255a6b c046e6dac1dd",
    "preset_default/2d/regions": "24d30bc81e08 8b054d0bec16 40bc44e65a5c 70a675f75cbc",
    "preset_default/2d/none": "ba312c887c62 e18775b5c429 830c25ecc1d7 04c1eadbb359",
    "preset_strong/3d/labels": "c9a5a746de75 13d5e8cd98ae ae0c1a874213 9c63a42a0072",
    "preset_strong/3d/regions": "fbfc9795fe71 3dddf7753a59 715684427b75 23b010a2d2fc",
    "preset_strong/3d/none": "c38edc3ee1fc 56a90affae69 a54429eb663b cceaeb7092f0",
    "preset_strong/2d/labels": "28d9d8879150 781a37d41393 e639108f53da 1dd4b785c7f8",
    "preset_strong/2d/regions": "6da54bf9575f fcf8e7438bdc d94c6612ff1e 4c85f7a229d1",
    "preset_strong/2d/none": "05f34426b7fd 34ad793bc0d0 860bad08ccb0 9fac1f8eb7bb",
}
GOLDEN_INVERSE = "f9d7905e326c939716d6"


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_same_seed_same_output_as_before_the_split(key):
    name, dims, target = key.split("/")
    assert " ".join(d[:12] for d in _digests(name, dims, target)) == GOLDEN[key]


def test_inverse_of_logged_params_same_as_before_the_split():
    assert _inverse_digest() == GOLDEN_INVERSE


def _compute() -> dict[str, list[str]]:
    return {
        f"{name}/{dims}/{target}": _digests(name, dims, target)
        for name in TRANSFORMS
        for dims in SPATIAL
        for target in ("labels", "regions", "none")
    }


if __name__ == "__main__":
    torch.set_num_threads(2)
    print("GOLDEN = {")
    for key, value in _compute().items():
        print(f'    "{key}": "{" ".join(d[:12] for d in value)}",')
    print("}")
    print(f"GOLDEN_INVERSE = {_inverse_digest()!r}")
