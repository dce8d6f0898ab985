"""The code's style is enforced: ``ruff check`` (with E501, lines over 110 columns) and
``ruff format --check`` pass on every Python folder, as ``make lint`` runs them. Skipped where ruff is not
installed (it is a dev dependency, so CI has it)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# the Python code of the repository (the Makefile's PYTHON_DIRS); Markdown code blocks are not held to it
PYTHON_DIRS = ("src", "tests", "benchmarks", "validation", "scripts", "archive")

needs_ruff = pytest.mark.skipif(
    importlib.util.find_spec("ruff") is None, reason="ruff is not installed (pip install -e '.[dev]')"
)


def ruff(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args],
        cwd=REPO,
        check=False,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_ruff
def test_the_makefile_checks_the_same_folders():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert f"PYTHON_DIRS = {' '.join(PYTHON_DIRS)}\n" in makefile


@needs_ruff
def test_the_line_length_rule_is_on():
    """A line of 111 columns fails under the repository's configuration, one of 110 passes."""
    config = str(REPO / "pyproject.toml")
    for width, fails in ((111, True), (110, False)):
        line = "x = " + repr("a" * (width - 6)) + "\n"
        assert len(line) == width + 1
        result = ruff("check", "--config", config, "--stdin-filename", "probe.py", "-", stdin=line)
        assert (result.returncode != 0) == fails, result.stdout
        assert ("E501" in result.stdout) == fails, result.stdout


@needs_ruff
def test_ruff_check_passes():
    result = ruff("check", *PYTHON_DIRS)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_ruff
def test_ruff_format_leaves_every_file_as_it_is():
    result = ruff("format", "--check", *PYTHON_DIRS)
    assert result.returncode == 0, "run `ruff format` on these:\n" + (result.stdout + result.stderr)[-4000:]
