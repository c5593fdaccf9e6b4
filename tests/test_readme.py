"""The README's examples run as written: each code block marked ``<!-- test: runs -->`` is run (shell
blocks with bash, Python blocks with this interpreter, in the project root with rtser installed),
and a block marked ``<!-- test: its output -->`` right after it must be exactly what it printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from .conftest import ROOT

BLOCK = re.compile(r"<!-- test: (runs|its output) -->\n```(\w+)\n(.*?)```\n", re.DOTALL)


def marked_blocks() -> list[tuple[str, str, str | None]]:
    """(language, code, expected output or None) of each block marked to run."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        found = BLOCK.findall(handle.read())
    runs = []
    for i, (mark, language, text) in enumerate(found):
        if mark == "runs":
            following = found[i + 1] if i + 1 < len(found) and found[i + 1][0] == "its output" else None
            runs.append((language, text, following[2] if following else None))
    return runs


def test_the_readme_marks_blocks_to_run():
    assert len(marked_blocks()) >= 2 and all(expected is not None for _, _, expected in marked_blocks())


@pytest.mark.parametrize("language, code, expected", marked_blocks(), ids=lambda value: str(value)[:40])
def test_a_readme_example_runs_and_prints_what_the_readme_shows(language, code, expected):
    command = ["bash", "-euo", "pipefail", "-c", code] if language == "sh" else [sys.executable, "-c", code]
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"], NO_COLOR="1")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    if expected is not None:
        assert done.stdout == expected
