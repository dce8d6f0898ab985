"""The command line: one clear line and status 2 on bad input, never a traceback."""

import subprocess
import sys

import pytest


def run(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "medseg3d.cli", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        **kw,
    )


def assert_one_line_error(result, fragment):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("medseg3d: error:") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_help_lists_commands():
    result = run("--help")
    assert result.returncode == 0
    for cmd in ("info", "cache", "prepare", "train", "predict", "evaluate", "nets", "models", "split"):
        assert cmd in result.stdout


def test_help_states_the_exit_status_contract():
    """Issue 36: the exit codes are a contract, in --help as in the README; the codes main returns are the
    ones it states."""
    from medseg3d.review import EXIT_OK, EXIT_REFUSED, EXIT_REVIEW

    text = run("--help").stdout
    assert "exit status, every command:" in text
    for code, words in (
        (EXIT_OK, "done"),
        (EXIT_REVIEW, "quality check fired"),
        (EXIT_REFUSED, "refused"),
        (1, "a bug"),
    ):
        assert any(line.strip().startswith(f"{code}  ") and words in line for line in text.splitlines()), code
    predict = run("predict", "--help").stdout
    assert "exit codes:" in predict and "3  every output written, but a quality check fired" in predict


def test_experiment_help_names_every_experiment():
    from medseg3d.experiments.catalogue import EXPERIMENTS

    result = run("experiment", "--help")
    assert result.returncode == 0
    for name in EXPERIMENTS:
        assert name in result.stdout, name


def test_missing_dataset(tmp_path):
    assert_one_line_error(run("cache", tmp_path / "nope", "--out", tmp_path / "c"), "no such dataset")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run("cache", tmp_path / "empty", "--out", tmp_path / "c"), "no cases found")


def test_file_where_folder_expected(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x", encoding="utf-8")
    assert_one_line_error(run("cache", f, "--out", tmp_path / "c"), "is a file")


def test_prepare_is_the_cache_command_with_a_note(tmp_path):
    """`prepare`, the old name of `cache`, does the same and says so in one line on stderr before its
    result."""
    result = run("prepare", tmp_path / "nope", "--out", tmp_path / "c")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("medseg3d: note: `medseg3d prepare` is now `medseg3d cache`"), lines[0]
    assert lines[1].startswith("medseg3d: error:") and "no such dataset" in lines[1], lines[1]
    quiet = run("cache", tmp_path / "nope", "--out", tmp_path / "c")
    assert lines[1] == quiet.stderr.strip() and "note" not in quiet.stderr


def test_train_without_budget(brats_root, tmp_path):
    assert_one_line_error(run("train", brats_root, "--out", tmp_path / "r"), "--epochs")


def test_unknown_model(tmp_path, brats_root):
    case = brats_root / "Brats18_2013_2_1"
    assert_one_line_error(
        run("predict", tmp_path / "nomodel", case, "-o", tmp_path / "o.nii.gz"), "no such model"
    )
    assert not (tmp_path / "o.nii.gz").exists()


def test_unknown_preset(brats_root, tmp_path):
    assert_one_line_error(
        run("train", brats_root, "--out", tmp_path / "r", "--preset", "nope", "--epochs", "1"),
        "unknown preset",
    )


def test_missing_modality(tmp_path, brats_root):
    case = tmp_path / "Brats18_2013_2_1"
    case.mkdir()
    for m in ("flair", "t1", "t2"):
        name = f"Brats18_2013_2_1_{m}.nii.gz"
        (case / name).symlink_to(brats_root / "Brats18_2013_2_1" / name)
    assert_one_line_error(
        run("cache", case, "--out", tmp_path / "c", "--modalities", "flair,t1ce"), "t1ce is missing"
    )


@pytest.mark.parametrize("cmd", ["nets", "models"])
def test_listing_commands_run(cmd):
    result = run(cmd)
    assert result.returncode == 0, result.stderr


def test_a_reader_that_goes_away_is_no_error():
    """``medseg3d models | head -1``: the reader closes the pipe; no traceback, the exit status of SIGPIPE."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from medseg3d.cli import main; sys.exit(main(['models']))"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # gone before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == ""
