import importlib.util
import locale
import os
import sys
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


_START_LOCALE = locale.setlocale(locale.LC_CTYPE)


@pytest.fixture(autouse=True)
def _keep_the_locale():
    """SimpleITK's DICOM writer (the tests' series writers) sets the process's LC_CTYPE to "C"; every later
    open() without an encoding would then read ASCII (torch's inductor templates fail so). Put back the locale
    the suite started with after each test (also after a module fixture changed it before the test began), so
    that no test depends on the order the suite runs in."""
    yield
    if locale.setlocale(locale.LC_CTYPE) != _START_LOCALE:
        locale.setlocale(locale.LC_CTYPE, _START_LOCALE)


SMALL_CASES = ["Brats18_2013_2_1", "Brats18_CBICA_ABM_1", "Brats18_TCIA10_628_1"]


def link_cases(brats_root: Path, dest: Path, cases) -> Path:
    """A dataset folder holding symbolic links to shared cases (the data are never copied)."""
    dest.mkdir(parents=True, exist_ok=True)
    for case in cases:
        (dest / case).symlink_to(brats_root / case, target_is_directory=True)
    return dest


@pytest.fixture(scope="session")
def small_dataset(brats_root, tmp_path_factory) -> Path:
    """Three shared cases (two HGG, one LGG), linked into a temporary dataset folder."""
    return link_cases(brats_root, tmp_path_factory.mktemp("data") / "brats3", SMALL_CASES)


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
VALIDATION = SCRIPTS.parent / "validation"  # studies whose results docs/ quote, and the fuzz harness


def load_script(name: str, folder: Path = SCRIPTS):
    """A module of ``scripts/`` (or of ``folder``, e.g. ``VALIDATION``; not a package) loaded from its file,
    e.g. ``load_script("crossval_report")``. Its folder goes on ``sys.path``, as when it runs as a script, so
    that it can import its siblings."""
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
