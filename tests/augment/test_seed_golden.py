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


GOLDEN = {
    'flip/3d/labels': ['dd46f9a65176b8635809', 'c0229c8947b6da6c268f', 'e025fca0686dba2084b5', 'edaf619a70da045165e4'],
    'flip/3d/regions': ['f2632d009a46a4b6a5c4', 'b2e071527d747cb7c827', '4b9356852744a726c292', 'f20f2e24b8db00bd37ff'],
    'flip/3d/none': ['91efee332f9acf3aebb0', '21ff78a4eed738dbf0d2', '0be910a3e2524f4e73e9', '7ce7ece3bf012e2c8dc1'],
    'flip/2d/labels': ['20572d3c3a7bc9366f95', 'f1bf6954a68f998f7742', 'e7bf4f7591d0e1ad9b50', 'f1bf6954a68f998f7742'],
    'flip/2d/regions': ['39cdcd727f76b0ab33c2', '1085efd006b8c3cbc8e8', '0a9ae9d83a7a4f678972', '1085efd006b8c3cbc8e8'],
    'flip/2d/none': ['d75d044a5991cfbe0745', 'ee86214e177f9d47227b', '2fbf0803fd66c08fcd94', 'ee86214e177f9d47227b'],
    'rotation/3d/labels': ['dc9df37109f399cddd72', '3965d8a86025480fc533', '300786e4f0fd35185423', '6da7fc0bef5d276a3ba4'],
    'rotation/3d/regions': ['b7f78c42e627939ed515', '5977efd6ec2b1ecd49ae', '370196aef4e28713d620', '1c7b9e848d5f92e5fb87'],
    'rotation/3d/none': ['19fff0d98e64a39e35ac', 'efc15e670fe9a009f162', 'd54048ffd2b15d4d036c', '9075bb0713a6f6f4fee0'],
    'rotation/2d/labels': ['434c6af163ca79006e48', '8606d117a71b573375e1', 'bd09c77dd9bff032f7e3', '53df0f72c0106b5b74af'],
    'rotation/2d/regions': ['575fa0f1030e4aab693a', 'bf9081f7a02d3c2d4ee5', '1a0cd2dadd026053f053', '02bbd28dd4d35b3edef3'],
    'rotation/2d/none': ['f81c1f9fe8726cc917f6', 'b93e3c1d7b9f9cadfa2d', 'c7f1c3c2d69ff85115bd', '8baba980a8fd3e64b749'],
    'rotation_all/3d/labels': ['9a236078e405aa7a5713', '51f1a3b9482db6ac4428', 'b87776e972a770d3e10d', 'c39985809029ddde961f'],
    'rotation_all/3d/regions': ['0260b7a69e65a407e9f2', '6520fda614c9241f6c77', '6bf594d7686f9c00af3d', 'afb540511ff9288238c9'],
    'rotation_all/3d/none': ['379dd0721f630c225828', '6b6f687939ccfebd8dcf', '660e1ae0a5f369d1d64e', '34a70666f728807f7b6d'],
    'rotation_all/2d/labels': ['3c48658b26c28b75a069', 'a8197a3f94ce9e1de19a', '8fde76ba797c3ff5f69c', 'e41f56913f25cae11e6c'],
    'rotation_all/2d/regions': ['cd8210de4cbf5b46d454', 'f19085f427fef5aba835', '7ec15e8f8ec3d9993870', '22c0c477961c2d984a1e'],
    'rotation_all/2d/none': ['9d4a00fa4e661f1e8cdf', 'cc89fe7e52c77caa945b', 'eb483a06c42837bd2e16', 'df4529275c05cd7028af'],
    'scale_aniso/3d/labels': ['1c2b4f0902b161018a4d', '1aeda632f8bc1421ab67', 'f93184cafd7783e306e6', 'c53a0577d1fea5263668'],
    'scale_aniso/3d/regions': ['14555a2d145f0aa7e016', 'a76ee533aea887c85e33', 'e8fd06155d31137742af', 'a6a58c740b74a9acc1c3'],
    'scale_aniso/3d/none': ['718888b4d5d29ce066e7', 'e56a32d54cfdba9fe1a0', 'b67a22f587f0a8365c63', 'e7b5e87c0584a062249e'],
    'scale_aniso/2d/labels': ['13962dc65e860850c433', 'c5774ca21b1d9ad8b0ce', 'add0d39d2b0fa2da7c7d', '70ea32b08faf911abaf0'],
    'scale_aniso/2d/regions': ['6414478744954e868a6a', '4eafe08f2a1a6e8c3a13', '5a98e8b0c7049d9a15eb', '661a1c819cb67f2e4516'],
    'scale_aniso/2d/none': ['63d2962f991da790d96d', '9ad9d3fb119e03d59311', '362f2080ef5c4dcd59bd', 'fb3b78e62072e11d4df5'],
    'rotate_scale_linear_labels/3d/labels': ['bc7576963df914d9dbce', '23d324b9c0601a7aa5e4', '25cfa652f0332addba15', 'f833517d50c4ea32528d'],
    'rotate_scale_linear_labels/3d/regions': ['f26ec27094d70fc55b43', '3e65e4da3ef7bf2a014f', 'e5483a3f457dfea6163e', '422c85e79d5b9d07a9d4'],
    'rotate_scale_linear_labels/3d/none': ['a1c5b37459b13513b17f', '35780dd2ea11d06e7bac', 'fd9f71a0c1041f370172', 'f38a95563ef0de851888'],
    'rotate_scale_linear_labels/2d/labels': ['cfb0645bfbcf597d552b', '5a5535c0743493068cf6', '0c69f4e55df6acba21ad', '6dae6f3eab7269de7d71'],
    'rotate_scale_linear_labels/2d/regions': ['6ceb492b2062ba9dacf9', 'cb9c721fa803a6d18d66', '1f3d7f79df3ee9809549', '0fb4629dd4759581799e'],
    'rotate_scale_linear_labels/2d/none': ['b2038b06269834b2fa20', 'd2c3e91fbdb1c7ec3594', 'e35d384ed48a99eaa568', '5546186833d78b91206f'],
    'intensity/3d/labels': ['5666ca6cb490b5f128fa', 'f81749cdd94c75f04c4f', 'a616d25487fd4a65165c', 'd1ae4c390f2a5c35ac0b'],
    'intensity/3d/regions': ['9a1cc10f0f0e1ca8ace0', '8955e38e3872a208f56f', '563ffcb1fdff8ba968da', '23b849c63ac5f4df28a6'],
    'intensity/3d/none': ['0b8ce02bd21498152554', '278d51a9591d38c54c7b', 'bdb117454f7ca7488f0f', '87e2781c6b423e44ea4e'],
    'intensity/2d/labels': ['01a33a4ed5dce5da2185', '5440e3959f9b5c62e94e', '01b607fbb6d969e25599', '32396164c5a7d2104212'],
    'intensity/2d/regions': ['98f2025783cbb0aa4122', 'c28d16715c7df5f26154', '3c9906c128a18ca27c10', 'b73877a022d6a78cf42b'],
    'intensity/2d/none': ['0dc8fd39a31cc8f06aeb', 'c91ea06fb4643d17eb08', 'feb11150eb9c6bbaa51d', '3abea09ad21443221bbe'],
    'gamma/3d/labels': ['ea00948b59671be40acf', '1c58ec13d87dfe78aab5', '796e3e5a075645f55ac6', '42187be10f1fb18ef058'],
    'gamma/3d/regions': ['0bf9c5e28c070c416c6a', '3979366a0388da3d313f', 'e16f22421d9cb09d1bf6', '18269be49e4fa0b786da'],
    'gamma/3d/none': ['bedb58200eda45ab46c7', 'fca03245f9779e7fb3f1', 'cbe962d1442ce6b76335', 'e5d33cf7de12fdf4fec2'],
    'gamma/2d/labels': ['634d0f02ff5c37acfd39', '995992d3b2c8e4b5f5fa', '3210a418bb8bada2d6ae', '9c53ac6c374730d43864'],
    'gamma/2d/regions': ['bbfcd1b7f0d793f0b4d8', '5d6a1c371a2c57975a09', 'b9449175762ae4b74abb', '1480ab38c1732d3e7df4'],
    'gamma/2d/none': ['05e056cf3331ed253553', '9333c8566cb43a39b7c0', '797751c7c2b0194edfe8', 'dc5f46061f3a75b852a1'],
    'noise/3d/labels': ['8e0516e4f55d30c7fd4c', 'd994e47723a194aeaaa4', 'b0b82409fa9e097c3df4', 'cd2d7aa933f7185452df'],
    'noise/3d/regions': ['f370e07a09232f7df185', 'e4b21b6af7ae62c94f82', '3b2e2b5adfe143ec6a0a', '230b78a1d4c39b1efc31'],
    'noise/3d/none': ['05f31c392770bf4507b5', '3a06da80343a5994af36', 'c7fda3b3a2d6a5649053', '9422cd88dca94790b2f7'],
    'noise/2d/labels': ['a7863dfe7cce3afa033e', '456ea3c282e1ea1e141a', '3999a861e13cb6976020', '58436e8a03a24caaa719'],
    'noise/2d/regions': ['5b31ab325bc9192dbd99', '7a1e2ee156cd543ff91e', '391475a1a5934e86758d', '8df1142dba4f04c19d05'],
    'noise/2d/none': ['6db33b211b605cada198', '1ce6ce3ba4ba135adfaf', '981a8014285dbc58f5ea', '51cbc763dc26d3eb2094'],
    'preset_none/3d/labels': ['6e9312b078b00150c3d2', '6e9312b078b00150c3d2', '6e9312b078b00150c3d2', '6e9312b078b00150c3d2'],
    'preset_none/3d/regions': ['274086d6d3e554107963', '274086d6d3e554107963', '274086d6d3e554107963', '274086d6d3e554107963'],
    'preset_none/3d/none': ['d44d63f353e9033b97d9', 'd44d63f353e9033b97d9', 'd44d63f353e9033b97d9', 'd44d63f353e9033b97d9'],
    'preset_none/2d/labels': ['02b4a7c1d7dce5c1221c', '02b4a7c1d7dce5c1221c', '02b4a7c1d7dce5c1221c', '02b4a7c1d7dce5c1221c'],
    'preset_none/2d/regions': ['24d30bc81e08df215e0d', '24d30bc81e08df215e0d', '24d30bc81e08df215e0d', '24d30bc81e08df215e0d'],
    'preset_none/2d/none': ['ba312c887c625f673a47', 'ba312c887c625f673a47', 'ba312c887c625f673a47', 'ba312c887c625f673a47'],
    'preset_paper/3d/labels': ['66e687795f2022ec7e2c', 'ab0261797bbc08289c31', '6e9312b078b00150c3d2', '2313b68ecc11f2cd8b51'],
    'preset_paper/3d/regions': ['ab2d753c5fcef9f95f5b', '9b64111c5e0a7401f893', '274086d6d3e554107963', 'e3e46a7be529c390a582'],
    'preset_paper/3d/none': ['582ea144037c1122820a', '131aadac2a836e082ca6', 'd44d63f353e9033b97d9', 'b552262c3338aa6c43ab'],
    'preset_paper/2d/labels': ['97b8b35cbdf789e18939', 'fceac6255a6b4421243e', '02b4a7c1d7dce5c1221c', 'f74b891301126750a768'],
    'preset_paper/2d/regions': ['13053786fbac6bb35da7', '40bc44e65a5c2352a5f9', '24d30bc81e08df215e0d', '61e2ce9622dc341f45fa'],
    'preset_paper/2d/none': ['3e94d341432dff98617c', '830c25ecc1d7f757c7d6', 'ba312c887c625f673a47', 'e193ca101f1adec83139'],
    'preset_default/3d/labels': ['421aef00a69607d89a9b', '446fed86ab737c61bc2e', '71292b10b4395b522405', '776fa8613a1c9c857fb7'],
    'preset_default/3d/regions': ['80aa4eb887a38697c20a', '74ecea63b0199d462ef4', '58d6042b0570fc3fb057', 'ebd9203a73b4a6f7e634'],
    'preset_default/3d/none': ['878581fc41754ea46a8d', '8fe61bdb71d43aaef888', '2100de486be71d265190', 'b543c37440633865ff7e'],
    'preset_default/2d/labels': ['02b4a7c1d7dce5c1221c', '4170d34279d29ff11937', 'fceac6255a6b4421243e', 'c046e6dac1ddc9de01ff'],
    'preset_default/2d/regions': ['24d30bc81e08df215e0d', '8b054d0bec165d1e6fa0', '40bc44e65a5c2352a5f9', '70a675f75cbc866b6531'],
    'preset_default/2d/none': ['ba312c887c625f673a47', 'e18775b5c429b921d438', '830c25ecc1d7f757c7d6', '04c1eadbb359c826862e'],
    'preset_strong/3d/labels': ['c9a5a746de75dca6a6da', '13d5e8cd98aeeaec957e', 'ae0c1a87421341957802', '9c63a42a0072f8723229'],
    'preset_strong/3d/regions': ['fbfc9795fe71e77b15e7', '3dddf7753a5962765efc', '715684427b7559dd8037', '23b010a2d2fc08ee7cbb'],
    'preset_strong/3d/none': ['c38edc3ee1fc56c83733', '56a90affae694f559c1c', 'a54429eb663b2cd77d24', 'cceaeb7092f0facc0493'],
    'preset_strong/2d/labels': ['28d9d8879150e16c0f7e', '781a37d41393cfe21fe8', 'e639108f53dac810917e', '1dd4b785c7f840214203'],
    'preset_strong/2d/regions': ['6da54bf9575f4836da6b', 'fcf8e7438bdc39447614', 'd94c6612ff1e1e1e85c9', '4c85f7a229d13c65ebe2'],
    'preset_strong/2d/none': ['05f34426b7fd0944d2ed', '34ad793bc0d0299899c6', '860bad08ccb0f40195fe', '9fac1f8eb7bb0b5c0adf'],
}
GOLDEN_INVERSE = 'f9d7905e326c939716d6'


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_same_seed_same_output_as_before_the_split(key):
    name, dims, target = key.split("/")
    assert _digests(name, dims, target) == GOLDEN[key]


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
        print(f"    {key!r}: {value!r},")
    print("}")
    print(f"GOLDEN_INVERSE = {_inverse_digest()!r}")
