"""Check that a reformatting changed no behaviour: the Python files of two revisions parse to the same AST.

Every ``.py`` file present in both revisions is parsed and its ``ast.dump`` compared. Docstrings (and the
other bare string statements: attribute docstrings, which Python evaluates and drops) are compared with their
whitespace normalised, so prose re-wrapped inside them compares equal; every other node must be identical.
Strings split by implicit concatenation compare equal as they are (the parser folds them), and so do comments,
parentheses and layout, which the AST does not hold.

Usage::

    python scripts/ast_equal.py main HEAD           # revisions, from the repository root
    python scripts/ast_equal.py main                # main against the working tree
    python scripts/ast_equal.py --ignore-docstrings main HEAD   # only docstrings were written or changed

With ``--ignore-docstrings`` the bare string statements are left out of the comparison altogether, so a
change that only adds or rewrites docstrings compares equal.

Exit status 0 when no compared file differs, 1 otherwise; files in only one revision are listed, not counted.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path


def _is_bare_string(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def normalised(source: str, ignore_docstrings: bool = False) -> str:
    """``ast.dump`` of ``source`` with each bare string statement's whitespace collapsed to single spaces.

    Args:
        source: Python source text.
        ignore_docstrings: leave the bare string statements (docstrings) out of the dump instead.

    Returns:
        The dump, without line numbers (layout is not behaviour).

    Raises:
        SyntaxError: when ``source`` is not Python.
    """
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if ignore_docstrings:
            for field in ("body", "orelse", "finalbody"):
                statements = getattr(node, field, None)
                if isinstance(statements, list):
                    setattr(node, field, [s for s in statements if not _is_bare_string(s)])
        elif _is_bare_string(node):
            node.value.value = " ".join(node.value.value.split())
    return ast.dump(tree)


def same_code(old: str, new: str, ignore_docstrings: bool = False) -> bool:
    """Whether two sources are the same program up to layout, comments and docstring whitespace.

    Args:
        old, new: Python source texts.
        ignore_docstrings: whether docstrings (any bare string statement) may differ in content too, or be
            added or removed.

    Returns:
        True when the ASTs are equal under that comparison.

    Raises:
        SyntaxError: when either source is not Python.
    """
    return normalised(old, ignore_docstrings) == normalised(new, ignore_docstrings)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def python_files(rev: str | None) -> set[str]:
    """The tracked ``.py`` paths of a revision (None: of the working tree, untracked ones included)."""
    if rev is None:
        listed = _git("ls-files", "--cached", "--others", "--exclude-standard", "*.py")
        return {p for p in listed.splitlines() if Path(p).is_file()}
    return {p for p in _git("ls-tree", "-r", "--name-only", rev).splitlines() if p.endswith(".py")}


def read(rev: str | None, path: str) -> str:
    return Path(path).read_text(encoding="utf-8") if rev is None else _git("show", f"{rev}:{path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the revision before (e.g. main)")
    parser.add_argument("new", nargs="?", help="the revision after (default: the working tree)")
    parser.add_argument(
        "--ignore-docstrings", action="store_true", help="leave docstrings out (a change of docstrings only)"
    )
    args = parser.parse_args(argv)
    old_files, new_files = python_files(args.old), python_files(args.new)
    common = sorted(old_files & new_files)
    differ = [
        p for p in common if not same_code(read(args.old, p), read(args.new, p), args.ignore_docstrings)
    ]
    for label, paths in (("only before", old_files - new_files), ("only after", new_files - old_files)):
        for path in sorted(paths):
            print(f"{label}: {path}")
    for path in differ:
        print(f"differs: {path}")
    print(f"{len(common)} files compared, {len(differ)} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
