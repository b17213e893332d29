"""Tests: the command lines printed in the docs run as a reader runs them.

A reader copies a line of a ``sh`` block, or a code span, into a fresh shell at the repository
root, where the venv is not activated. So the project's programs must be written
``.venv/bin/...``; every program, ``make`` target, subcommand and flag a line names must exist;
a concrete line must parse with the program's own argparse parser; each subcommand's ``--help``
must run through the installed console script; and the lines that need no running lab
(``validate``, ``explain --config``) are run with bash, exactly as printed, on a PATH without
the venv.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

import tier1_gateway.cli
import tier2_gateway.cli
from gateway_core.cli import SUBCOMMANDS, _parser
from gateway_lab.cli import parser as lab_parser
from gateway_lab.cli import subcommands

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
PROGRAMS = ("tier1-gateway", "tier2-gateway", "gateway-lab")
# Every line of these docs' sh blocks is checked: its program must resolve.
READER_DOCS = ("README.md", "docs/lab.md")
# Host-side docs: their project commands must be written .venv/bin/... and must parse.
# (docs/compose.md is left out: its bare names are what runs inside the containers, where the
# image's venv is on PATH; its `gateway-lab` lines are still checked below, with every doc's.)
HOST_DOCS = (
    *READER_DOCS,
    "docs/operations.md",
    "docs/tracing.md",
    "docs/load-balancing.md",
    "docs/kubernetes.md",
    "docs/benchmarks.md",
    "docs/architecture.md",
    "docs/config-reference.md",
    "docs/tls.md",
    "docs/http2-grpc.md",
    "docs/authorization.md",
    "docs/rate-limiting.md",
    "deploy/compose/README.md",
)
SYSTEM_TOOLS = ("curl", "make")  # README's requirements
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(?:[:=/][A-Z][A-Z0-9_]*)*(?:\.\.\.)?$")
SHELL_LANGS = ("sh", "bash", "shell")


@dataclass(frozen=True)
class Command:
    doc: str
    line: int
    text: str
    words: tuple[str, ...]

    @property
    def program(self) -> str:
        return Path(self.words[0]).name

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"

    @property
    def synopsis(self) -> bool:
        """A usage line with ``[optional]`` parts, ``a|b`` or placeholders, or a bare
        ``PROGRAM SUBCOMMAND`` naming a subcommand in prose; not a concrete command line."""
        return len(self.words) == 2 or any(
            w.startswith("[")
            or w.endswith("]")
            or "|" in w
            or w.endswith("...")
            or PLACEHOLDER.match(w)
            for w in self.words[1:]
        )


def _words(text: str) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(text, comments=True))
    except ValueError:
        return ()


def commands(doc: str, *, spans: bool = True) -> list[Command]:
    """Shell lines of fenced sh blocks (and project lines of plain blocks), and code spans."""
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    out: list[Command] = []
    fence: str | None = None
    pending: tuple[int, str] | None = None
    usage: int | None = None  # index in ``out`` of a plain block's usage line being continued
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip()
            pending = usage = None
            continue
        if fence is None:
            for span in re.findall(r"`([^`]+)`", line) if spans else []:
                words = _words(span)
                if len(words) >= 2 or (words and re.match(r"\.venv/bin/\S", words[0])):
                    out.append(Command(doc, number, span, words))
        elif fence in SHELL_LANGS:
            start, text = (
                (pending[0], pending[1][:-1] + " " + stripped) if pending else (number, stripped)
            )
            pending = (start, text) if text.endswith("\\") else None
            if pending is None and _words(text):
                out.append(Command(doc, start, text, _words(text)))
        elif fence == "":
            # A usage block: a line starting with a program; indented lines continue it.
            if usage is not None and line[:1].isspace():
                text = f"{out[usage].text} {stripped}"
                out[usage] = Command(doc, out[usage].line, text, _words(text))
                continue
            words = _words(stripped)
            usage = None
            if words and Path(words[0]).name in PROGRAMS:
                usage = len(out)
                out.append(Command(doc, number, stripped, words))
    return out


def project_commands(docs: tuple[str, ...]) -> list[Command]:
    return [c for doc in docs for c in commands(doc) if c.program in PROGRAMS and len(c.words) > 1]


def parsers() -> dict[str, argparse.ArgumentParser]:
    return {
        "tier1-gateway": _parser(tier1_gateway.cli.ROLE),
        "tier2-gateway": _parser(tier2_gateway.cli.ROLE),
        "gateway-lab": lab_parser(),
    }


def split_subcommand(command: Command) -> tuple[list[str], str | None]:
    """The arguments as the program's main() hands them to argparse, and the subcommand."""
    args = list(command.words[1:])
    if command.program != "gateway-lab" and (not args or args[0] not in (*SUBCOMMANDS, "-h")):
        args.insert(0, "run")  # the gateways' default subcommand, as gateway_core.cli.main does
    if command.program == "gateway-lab" and args[:1] == ["--topology"]:
        return args, (args[2] if len(args) > 2 else None)
    return args, (args[0] if args else None)


def parse(program: str, args: list[str]) -> str:
    """argparse's error message, or '' when ``args`` parse."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.suppress(SystemExit):
        parsers()[program].parse_args(args)
        return ""
    return err.getvalue().strip().splitlines()[-1] if err.getvalue() else "exited"


def fresh_shell_env() -> dict[str, str]:
    """The environment of a new terminal: PATH without the venv this test runs in."""
    venv = str(VENV_BIN)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return {**env, "PATH": os.pathsep.join(path or ["/usr/bin", "/bin"])}


def run_as_printed(command: Command) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command.text],
        cwd=ROOT,
        env=fresh_shell_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module", autouse=True)
def venv() -> None:
    if not (VENV_BIN / "python").exists():
        pytest.skip(f"the docs' commands use the venv `make` creates at {VENV_BIN}; absent here")


def test_project_programs_are_called_through_the_venv() -> None:
    """A bare ``tier1-gateway``/``tier2-gateway``/``gateway-lab`` is not on a fresh shell's PATH."""
    bare = [
        c.where
        for doc in HOST_DOCS
        for c in commands(doc)
        if c.words[0] in PROGRAMS and len(c.words) > 1
    ]
    assert bare == []


def test_every_program_and_make_target_resolves() -> None:
    """``.venv/bin/X`` exists and is executable; ``make T`` names a target; READER_DOCS' sh lines
    run nothing else but curl."""
    problems = []
    for doc in HOST_DOCS:
        for c in commands(doc):
            if c.words[0].startswith(".venv/bin/"):
                path = ROOT / c.words[0]
                if not (path.is_file() and os.access(path, os.X_OK)):
                    problems.append(f"{c.where}: {c.words[0]} does not exist")
            elif c.words[0] == "make" and doc in READER_DOCS:
                for target in c.words[1:]:
                    dry = subprocess.run(
                        ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=30
                    )
                    if dry.returncode != 0:
                        problems.append(f"{c.where}: no make target {target!r}")
    for doc in READER_DOCS:
        for c in commands(doc, spans=False):
            if not c.words[0].startswith(".venv/bin/") and c.words[0] not in SYSTEM_TOOLS:
                problems.append(
                    f"{c.where}: {c.words[0]!r} is neither in .venv/bin nor {SYSTEM_TOOLS}"
                )
    assert problems == []


def test_subcommands_and_flags_exist_and_concrete_lines_parse() -> None:
    """Concrete lines parse with the program's argparse parser; synopses name real subcommands
    and real flags."""
    problems = []
    found = parsers()
    for c in project_commands(HOST_DOCS):
        args, sub = split_subcommand(c)
        if not c.synopsis:
            error = parse(c.program, args)
            if error:
                problems.append(f"{c.where}: {error}")
            continue
        known = _subparsers(found[c.program])
        if sub not in known:
            problems.append(f"{c.where}: no subcommand {sub!r}")
            continue
        options = {
            o for a in (*known[sub]._actions, *found[c.program]._actions) for o in a.option_strings
        }
        for word in args:
            for flag in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", word.replace("[no-]", "")):
                if flag not in options:
                    problems.append(f"{c.where}: {c.program} {sub} has no {flag}")
    assert problems == []


def _subparsers(main: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {name: sub for name, (sub, _) in subcommands(main).items()}


def test_help_of_every_documented_subcommand_runs() -> None:
    """``.venv/bin/PROGRAM SUBCOMMAND --help`` works for every pair the docs use."""
    pairs = sorted(
        {(c.program, split_subcommand(c)[1]) for c in project_commands(HOST_DOCS)}, key=str
    )
    assert len(pairs) >= 8, pairs
    for program, sub in pairs:
        assert sub is not None
        done = subprocess.run(
            [str(VENV_BIN / program), sub, "--help"],
            cwd=ROOT,
            env=fresh_shell_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, (program, sub, done.stderr)
        assert done.stdout.startswith(f"usage: {program} {sub}"), (program, sub, done.stdout)


def offline(c: Command) -> bool:
    """Lines that need no running lab or gateway: validate, explain against --config."""
    sub = split_subcommand(c)[1]
    return not c.synopsis and (sub == "validate" or (sub == "explain" and "--config" in c.words))


def test_offline_commands_run_as_printed() -> None:
    """validate and explain --config lines run with bash, from the root, on a fresh PATH."""
    runnable = [c for c in project_commands(HOST_DOCS) if offline(c)]
    assert {c.doc for c in runnable} >= {"README.md", "docs/lab.md", "docs/load-balancing.md"}
    for c in runnable:
        done = run_as_printed(c)
        assert done.returncode == 0, (c.where, done.stdout, done.stderr)
        assert "configuration is valid" in done.stdout or "rule:" in done.stdout, c.where


def test_unknown_cluster_selector_falls_through_to_the_weighted_rule() -> None:
    """lab.md's explain of ``X-CLUSTER-SELECTOR: cluster-9``: the lines it shows are the real
    output, and they name the weighted rule with its 50/25/25 split."""
    section = "### A selector value the lab does not know"
    lab = (ROOT / "docs/lab.md").read_text(encoding="utf-8").split(section, 1)[1]
    shown = lab.split("```\n", 3)[2].splitlines()
    (command,) = [c for c in commands("docs/lab.md", spans=False) if "cluster-9" in c.text]
    assert offline(command) and section.startswith("### ")
    real = run_as_printed(command).stdout.splitlines()
    assert shown and all(line in real for line in shown), (shown, real)
    assert shown[0].endswith(".weighted)")
    assert [re.findall(r"share=(\d+)", ln) for ln in shown[3:]] == [["50"], ["25"], ["25"]]


def tracked_markdown() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return sorted(
            str(p.relative_to(ROOT)) for p in ROOT.rglob("*.md") if ".venv" not in p.parts
        )
    listed = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return listed.stdout.split()


def test_every_gateway_lab_subcommand_in_any_doc_exists() -> None:
    """``gateway-lab SUB`` anywhere in a tracked markdown file names a real subcommand."""
    known = set(_subparsers(lab_parser()))
    named = []
    for doc in tracked_markdown():
        for c in commands(doc):
            for i, word in enumerate(c.words):
                if Path(word).name == "gateway-lab" and i + 1 < len(c.words):
                    rest = [w for w in c.words[i + 1 :] if not w.startswith(("-", "["))]
                    if c.words[i + 1] == "--topology":
                        rest = rest[1:]
                    named.append((f"{doc}:{c.line}", rest[0] if rest else ""))
    assert {"up", "kill", "start"} <= {sub for _, sub in named}
    assert [(where, sub) for where, sub in named if sub not in known] == []


def test_files_the_commands_write_are_git_ignored() -> None:
    """What a documented command writes into the checkout (``docker cp`` destinations, ``--out``
    and ``-w`` folders) is ignored by git, so following the docs leaves the tree clean."""
    written = []
    for doc in HOST_DOCS:
        for c in commands(doc, spans=False):
            words = list(c.words)
            if words[:2] == ["docker", "cp"] and len(words) > 3:
                written.append((c.where, words[3]))
            for flag, value in itertools.pairwise(words):
                if flag in ("--out", "-w"):
                    written.append((c.where, f"{value}/probe"))
    assert {path for _, path in written} >= {".lab/compose-ca.crt", "certs/lab/probe"}
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for where, path in written:
        assert not Path(path).is_absolute(), where
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, timeout=30)
        assert ignored.returncode == 0, f"{where}: {path} is not ignored by git"
