"""The docs stay true: every documented `cxrviewer …` / `cxr-train …` command names a subcommand and
flags that exist, and every relative link in the Markdown files points at a file that exists.

Commands are checked at ``--help`` level (the subcommand's help lists each flag the docs use), not
run: placeholders such as ``FILE`` or ``[--model M.onnx]`` need no real files.
"""

from __future__ import annotations

import contextlib
import io
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted(
    [ROOT / "README.md", ROOT / "bench" / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "resources").rglob("*.md")]
)

# `cxrviewer …`, `.venv/bin/cxrviewer …`, `python -m cxrviewer …`, `cxr-train …`, `python -m training …`
_COMMAND = re.compile(r"\s*(?:\$\s+)?(?:\S*/)?(?:python3? -m (cxrviewer|training)|(cxrviewer|cxr-train))(?=\s|$)(.*)")
_FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_INLINE = re.compile(r"`([^`\n]+)`")


def _help(program: str, words: list[str]) -> str:
    """The help text ``program WORDS --help`` prints (argparse exits after printing it)."""
    if program == "cxrviewer":
        from cxrviewer.cli import build_parser
    else:
        from training.cli import build_parser
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser().parse_args([*words, "--help"])
    return out.getvalue()


@cache
def _subcommands(program: str) -> frozenset[str]:
    top = _help(program, [])
    found = re.search(r"\{([a-z0-9,-]+)\}", top)
    assert found, f"{program} --help lists no subcommands"
    return frozenset(found.group(1).split(","))


@cache
def _flags(program: str, subcommand: str | None) -> frozenset[str]:
    text = _help(program, [subcommand] if subcommand else [])
    return frozenset(_FLAG.findall(text))


@cache
def _app_flags() -> frozenset[str]:
    from cxrviewer.ui.app import build_parser

    return frozenset(_FLAG.findall(build_parser().format_help()))


def _code_lines(text: str) -> list[str]:
    """Lines of fenced code blocks (continuations joined) and inline code spans."""
    lines: list[str] = []
    fenced = False
    shell = False  # a block tagged bash/sh/console, or untagged: its lines are commands
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            shell = fenced and line.strip()[3:] in ("", "bash", "sh", "console", "shell")
            continue
        if fenced:
            if not shell:
                continue
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            lines.append(pending + line)
            pending = ""
        else:
            lines.extend(_INLINE.findall(line))
    return lines


def _documented_commands() -> list[tuple[str, str, str]]:
    """(doc, program, the rest of the command line) for every documented command."""
    found = []
    for doc in DOCS:
        for line in _code_lines(doc.read_text(encoding="utf-8")):
            line = line.replace("\\|", "/")  # a Markdown-escaped `|` inside a table cell: alternatives
            for part in re.split(r"\s(?:\||&&|;|#)\s?", line):
                m = _COMMAND.match(part)
                if m:
                    program = "cxrviewer" if "cxrviewer" in (m.group(1), m.group(2)) else "cxr-train"
                    found.append((doc.relative_to(ROOT).as_posix(), program, m.group(3).strip()))
    return found


COMMANDS = _documented_commands()


def test_the_docs_document_commands():
    # the finder itself: README and docs name dozens of commands; an empty list would check nothing
    assert len(COMMANDS) > 30
    assert {p for _, p, _ in COMMANDS} == {"cxrviewer", "cxr-train"}


@pytest.mark.parametrize(("doc", "program", "rest"), COMMANDS, ids=[f"{d}:{p} {r[:40]}" for d, p, r in COMMANDS])
def test_documented_command_exists(doc: str, program: str, rest: str):
    words = rest.split()
    first = next((w.strip("[]`") for w in words), "")
    subcommand = first if first in _subcommands(program) else None
    if subcommand is None and first and not first.startswith("-") and first.isidentifier() and first.islower():
        # a lower-case word after the program that is not a subcommand: a typo or a removed command
        # (upper-case words are placeholders such as FILE; paths hold '/' or '.')
        pytest.fail(f"{doc}: `{program} {rest}`: {first!r} is not a {program} subcommand")
    known = _flags(program, subcommand) | _flags(program, None)
    if subcommand is None and program == "cxrviewer":
        known |= _app_flags()  # `cxrviewer [options] FILE...` opens the desktop app
    unknown = sorted(set(_FLAG.findall(rest)) - known)
    assert not unknown, f"{doc}: `{program} {rest}`: {', '.join(unknown)} not in `{program} {subcommand or ''} --help`"


def _links() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for target in _LINK.findall(text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL (https:, mailto:, file:) or an anchor in the same page
            out.append((doc.relative_to(ROOT).as_posix(), target.split("#", 1)[0]))
    return out


LINKS = _links()


def test_the_docs_have_links():
    assert len(LINKS) > 10


@pytest.mark.parametrize(("doc", "target"), LINKS, ids=[f"{d}->{t}" for d, t in LINKS])
def test_linked_file_exists(doc: str, target: str):
    path = (ROOT / doc).parent / target
    assert path.exists(), f"{doc} links to {target}, which does not exist"


def test_a_missing_flag_is_caught():
    # the check can fail: a flag no subcommand has is reported
    assert "--no-such-flag" not in _flags("cxrviewer", "score")
    assert "--out" in _flags("cxrviewer", "score")
    assert "score" in _subcommands("cxrviewer") and "fit" in _subcommands("cxr-train")
