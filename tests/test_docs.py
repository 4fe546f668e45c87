"""The README and docs/ stay true: every runnable block runs against a live demo, links resolve.

The convention (docs/development.md, "Writing docs"): a block fenced ```sh is run by bash
against the demo, with PROXY, KEY and ADMIN_KEY set as the demo's `export` line sets them, and
every HTTP answer curl gets must be 2xx; a block fenced ```python is run as a script with the
same environment. Anything else (```bash, ```text, ```json, ...) is shown, not run.
"""

from __future__ import annotations

import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from tests.support.paths import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
RUNNABLE = ("sh", "python")
README_LINES = 150
PAGE_LINES = 300
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_STATUS = re.compile(r"^HTTP-STATUS (\d{3})$", re.MULTILINE)
# Every curl in a ```sh block reports its status on standard error, for the check below.
_PRELUDE = "curl() { command curl -w '%{stderr}HTTP-STATUS %{http_code}\\n' \"$@\"; }\n"


@dataclass(frozen=True)
class Block:
    """A fenced block of a page: where it starts, its language and its text."""

    page: Path
    line: int
    language: str
    text: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def fenced_blocks(page: Path) -> list[Block]:
    """Every fenced block of a Markdown page."""
    text = page.read_text()
    return [
        Block(page, text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2))
        for m in _FENCE.finditer(text)
    ]


RUN_BLOCKS = [b for page in PAGES for b in fenced_blocks(page) if b.language in RUNNABLE]


def _read_line(stream: IO[bytes], deadline: float) -> str:
    """One line of a child's unbuffered output, waiting until ``deadline`` at most."""
    ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
    assert ready, "the demo printed nothing in time"
    return stream.readline().decode()


@dataclass(frozen=True)
class Demo:
    """A running demo: what it printed, and the environment its export line sets."""

    banner: list[str]
    env: dict[str, str]


@pytest.fixture(scope="module")
def running_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`freebusy-proxy serve` (the demo) on a free port, as command one runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREEBUSY_PROXY_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--port", "0"],
        cwd=tmp_path_factory.mktemp("demo"),
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        bufsize=0,  # what select() sees is what readline() has not read yet
    )
    assert process.stdout is not None
    try:
        deadline = time.monotonic() + 60
        banner: list[str] = []
        while not banner or not banner[-1].startswith("Press Ctrl+C"):
            banner.append(_read_line(process.stdout, deadline).rstrip("\n"))
            assert banner[-1] or process.poll() is None, "the demo exited:\n" + "\n".join(banner)
        (line,) = [line for line in banner if line.strip().startswith("export ")]
        exported = dict(word.split("=", 1) for word in shlex.split(line)[1:])
        assert set(exported) == {"PROXY", "KEY", "ADMIN_KEY"}, line
        scripts = Path(sys.executable).parent
        path = f"{scripts}{os.pathsep}{env.get('PATH', '')}"
        yield Demo(banner=banner, env={**env, **exported, "PATH": path})
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=str)
def test_documented_command_runs_against_the_demo(block: Block, running_demo: Demo) -> None:
    """The block runs as written against the demo; every HTTP answer in it is 2xx."""
    if block.language == "sh":
        command = ["bash", "-euo", "pipefail", "-c", _PRELUDE + block.text]
    else:
        command = [sys.executable, "-c", block.text]
    result = subprocess.run(  # noqa: S603 (the repository's own documentation)
        command,
        cwd=ROOT,
        env=running_demo.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{block} failed:\n{result.stdout}\n{result.stderr}"
    statuses = _STATUS.findall(result.stderr)
    if "curl" in block.text:
        assert statuses, f"{block}: curl made no request"
    assert all(status.startswith("2") for status in statuses), (
        f"{block}: answered {statuses}:\n{result.stdout}"
    )


def test_the_readme_shows_what_the_demo_prints(running_demo: Demo) -> None:
    """The README's copy of the banner has the demo's lines, in its order, as far as they are
    the same on every run (keys, ports and dates differ)."""
    heading = README.read_text().partition("## What the demo prints")[0].count("\n") + 1
    shown = next(b for b in fenced_blocks(README) if b.language == "text" and b.line > heading)

    def steady(line: str) -> str:
        return re.split(r"fbp_|https?://|'", line)[0].rstrip()

    assert [steady(line) for line in shown.text.splitlines()] == [
        steady(line) for line in running_demo.banner
    ]


def test_runnable_blocks_hold_no_fixed_dates() -> None:
    """A date written into a command goes stale; commands compute theirs from today."""
    dated = [str(b) for b in RUN_BLOCKS if re.search(r"\b20\d\d-\d\d-\d\d", b.text)]
    assert dated == []


def test_there_is_something_to_run() -> None:
    """The README and the API page each show requests that the test above runs."""
    pages = {b.page for b in RUN_BLOCKS if b.language == "sh"}
    assert {README, DOCS / "api.md", DOCS / "dialects.md"} <= pages


def test_readme_is_short_and_leads_to_the_docs() -> None:
    """The README stays a five-minute read and links the index and the real-tenant set-up."""
    text = README.read_text()
    assert len(text.splitlines()) <= README_LINES
    links = set(_LINK.findall(text))
    assert {"docs/index.md", "docs/real-tenant.md"} <= links
    # The two set-up commands, the first with its virtualenv (Debian's PEP 668).
    assert "python3 -m venv .venv && . .venv/bin/activate" in text
    assert "freebusy-proxy serve" in text
    assert "python -m pytest" in text


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_docs_pages_are_short(page: Path) -> None:
    """Each page of docs/ is one topic, short enough to read through."""
    assert len(page.read_text().splitlines()) <= PAGE_LINES


def test_the_index_lists_every_page() -> None:
    """docs/index.md links every page of docs/, so each is found from the README."""
    linked = set(_LINK.findall((DOCS / "index.md").read_text()))
    pages = {p.name for p in DOCS.glob("*.md")} - {"index.md"}
    assert pages - linked == set()


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of a page."""
    text = _FENCE.sub("", page.read_text())
    headings = re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page: Path) -> None:
    """Every relative link points at a file of the repository (and at a heading it has)."""
    broken = []
    for target in _LINK.findall(_FENCE.sub("", page.read_text())):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (
            anchor and linked.suffix == ".md" and anchor not in _anchors(linked)
        ):
            broken.append(target)
    assert broken == []
