"""Small synthetic samples shared by the augmentation tests."""

import torch


def gen(seed):
    return torch.Generator().manual_seed(seed)


def sample(spatial=(12, 14, 10), channels=2, seed=0, values=(0, 1, 2, 4)):
    """Image with a zero background shell and a label map drawn from ``values``."""
    g = gen(seed)
    image = torch.randn((channels, *spatial), generator=g)
    label = torch.tensor(values)[torch.randint(len(values), spatial, generator=g)]
    for axis in range(len(spatial)):
        image.narrow(axis + 1, 0, 2).zero_()
        label.narrow(axis, 0, 2).zero_()
    return image, label


def regions(label):
    return torch.stack([label > 0, label >= 2, label == 4]).float()
