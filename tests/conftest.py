import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    env = os.environ.get("MEDSEG3D_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if not (root / "brats2018").is_dir():
        pytest.skip(f"shared data not found at {root}; set MEDSEG3D_DATA")
    return root


@pytest.fixture(scope="session")
def brats_root(data_root) -> Path:
    return data_root / "brats2018"


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass
