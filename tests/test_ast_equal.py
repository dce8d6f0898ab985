"""scripts/ast_equal.py: two sources compare equal exactly when only layout, comments, string splitting or
docstring whitespace differ; the git comparison counts files and fails on a difference."""

import subprocess

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def ast_equal():
    return load_script("ast_equal")


BEFORE = '''def f(x, y):
    """Add two numbers, which is a long sentence that a formatter may want to wrap somewhere."""
    total = {"a": x, "b": y}  # a comment
    return total["a"] + total["b"], "one long message " + f"with {x} inside"
'''

# reformatted: other layout, comment moved, docstring re-wrapped, the strings split by implicit concatenation
AFTER = '''def f(
    x,
    y,
):
    """Add two numbers, which is a long sentence that
    a formatter may want to wrap somewhere."""
    # a comment, moved
    total = {
        "a": x,
        "b": y,
    }
    return (
        total["a"] + total["b"],
        "one long " "message " + f"with {x} " f"inside",
    )
'''


def test_layout_comments_split_strings_and_docstring_whitespace_compare_equal(ast_equal):
    assert ast_equal.same_code(BEFORE, AFTER)


@pytest.mark.parametrize(
    "changed",
    [
        BEFORE.replace('total["a"] +', 'total["a"] -'),
        BEFORE.replace('"one long message "', '"one long  message "'),  # whitespace inside a value matters
        BEFORE.replace("Add two numbers", "Add three numbers"),  # a docstring's words
        BEFORE.replace('f"with {x} inside"', 'f"with {y} inside"'),
        BEFORE.replace("def f(x, y):", "def f(x, y=1):"),
    ],
)
def test_a_change_of_code_value_or_docstring_words_differs(ast_equal, changed):
    assert changed != BEFORE
    assert not ast_equal.same_code(BEFORE, changed)


def test_attribute_docstrings_are_compared_as_docstrings(ast_equal):
    before = 'LIMIT = 3\n"""The limit, explained at length."""\n'
    assert ast_equal.same_code(before, 'LIMIT = 3\n"""The limit,\nexplained   at length."""\n')
    assert not ast_equal.same_code(before, 'LIMIT = 4\n"""The limit, explained at length."""\n')


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_revisions_are_compared_file_by_file(ast_equal, tmp_path, monkeypatch, capsys):
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text(BEFORE)
    (tmp_path / "b.py").write_text("X = 1\n")
    (tmp_path / "notes.md").write_text("not Python\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "before")
    monkeypatch.chdir(tmp_path)

    (tmp_path / "a.py").write_text(AFTER)
    (tmp_path / "c.py").write_text("Y = 2\n")
    assert ast_equal.main(["HEAD"]) == 0  # against the working tree
    out = capsys.readouterr().out
    assert "2 files compared, 0 differ" in out and "only after: c.py" in out

    (tmp_path / "b.py").write_text("X = 2\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "after")
    assert ast_equal.main(["HEAD~1", "HEAD"]) == 1
    out = capsys.readouterr().out
    assert "differs: b.py" in out and "differs: a.py" not in out and "2 files compared, 1 differ" in out


def test_ignore_docstrings_leaves_out_docstrings_only(ast_equal):
    documented = '''def f(x, y):
    """Add two numbers.

    Args:
        x, y: the numbers.
    """
    return x + y


class C:
    """A class, documented."""

    def m(self):
        """A method."""
        return 1
'''
    bare = "def f(x, y):\n    return x + y\n\n\nclass C:\n    def m(self):\n        return 1\n"
    assert not ast_equal.same_code(bare, documented)
    assert ast_equal.same_code(bare, documented, ignore_docstrings=True)
    # code still counts, also beside a docstring
    assert not ast_equal.same_code(bare, documented.replace("x + y", "x - y"), ignore_docstrings=True)
    assert not ast_equal.same_code(bare, documented.replace("return 1", "return 2"), ignore_docstrings=True)
    # a string that is a value (not a statement) is code
    assert not ast_equal.same_code("X = 'a'\n", "X = 'b'\n", ignore_docstrings=True)
