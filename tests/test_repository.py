"""Tests: the tracked files name no absolute path of a particular machine.

A clone anywhere else must behave the same, so nothing in the repository may point at the
directory this checkout happens to sit in, nor at a home or work folder. Reference material in
``../shared`` is reached relative to the checkout (``tests.helpers.SHARED``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO

# Machine-specific roots: a work area, home folders (Linux, macOS, root's) and Windows profiles.
SHARED_FOLDERS = frozenset(Path(p) for p in ("/", "/tmp", "/var/tmp", "/opt", "/srv", "/var"))
MACHINE_PATH = re.compile(rb"(?<![\w.$~-])(?:/(?:work|home|Users|root)/[\w.-]|[A-Z]:\\Users\\)")


def _tracked_files() -> list[Path]:
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout (or git is absent): the tracked files are unknown")
    out = subprocess.run(
        [git, "ls-files", "-z"], cwd=REPO, check=True, capture_output=True, timeout=60
    ).stdout
    return [REPO / name.decode() for name in out.split(b"\0") if name]


def _offending_lines(patterns: list[re.Pattern[bytes]]) -> list[str]:
    found = []
    this_file = Path(__file__).resolve()
    for path in _tracked_files():
        if path.resolve() == this_file or not path.is_file():
            continue  # this file spells the patterns out; a deleted file is not in the tree
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            if any(p.search(line) for p in patterns):
                text = line.decode(errors="replace").strip()
                found.append(f"{path.relative_to(REPO)}:{number}: {text}")
    return found


def test_no_tracked_file_names_a_machine_path() -> None:
    """No tracked file contains an absolute work/home path, nor this checkout's own location."""
    patterns = [MACHINE_PATH, re.compile(re.escape(str(REPO).encode()) + rb"\b")]
    # The folder holding the checkout names the machine too, unless it is a shared system
    # folder that documented commands legitimately use (a clone in /tmp/x, say).
    if REPO.parent not in SHARED_FOLDERS:
        patterns.append(re.compile(re.escape(str(REPO.parent).encode() + b"/")))
    assert _offending_lines(patterns) == []


def test_the_machine_path_pattern_catches_what_it_should() -> None:
    """The pattern flags the kinds of path that crept in before, and spares ordinary ones."""
    # Built from parts, so this file holds no such path itself.
    flagged = [
        b'SAMPLES = Path("' + _path("work", "shared", "istio-samples") + b'")',
        _path("home", "dev", "x"),
        b"C:\\Users\\me",
    ]
    spared = [
        _path("etc", "gateway", "certs"),
        _path("tmp", "lab"),
        b"$HOME" + _path("work", "x"),
        b"https://a.example" + _path("work", "x"),
    ]
    assert [bool(MACHINE_PATH.search(s)) for s in flagged] == [True] * len(flagged)
    assert [bool(MACHINE_PATH.search(s)) for s in spared] == [False] * len(spared)


def _path(*parts: str) -> bytes:
    return ("/" + "/".join(parts)).encode()
