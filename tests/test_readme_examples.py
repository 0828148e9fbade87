"""Every ```python block in README.md runs as written, against FakeProviderServer.

Each block runs alone in a fresh interpreter (so it must import and define all it uses and
close what it opens), with the providers' base URLs and dummy keys in the environment, as a
user's shell would have them. A failure names the block by its line and section.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmrouter_integrations.testing import FakeProviderServer

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _blocks() -> list[tuple[str, str]]:
    """(id, code) for each ```python block: id is 'L<line>-<section slug>'."""
    blocks: list[tuple[str, str]] = []
    section = "top"
    lines = README.read_text().splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            section = re.sub(r"[^a-z0-9]+", "-", line[3:].lower()).strip("-")[:40]
        if line.strip() == "```python":
            start = index + 1
            end = lines.index("```", start)
            blocks.append((f"L{start}-{section}", "\n".join(lines[start:end]) + "\n"))
            index = end
        index += 1
    return blocks


BLOCKS = _blocks()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


def test_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 4, [block_id for block_id, _ in BLOCKS]


@pytest.mark.parametrize("code", [code for _, code in BLOCKS], ids=[i for i, _ in BLOCKS])
def test_readme_block_runs(code: str, fake: FakeProviderServer, tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith(("_API_KEY", "_BASE_URL"))
    }
    env.update(
        OPENAI_API_KEY="sk-readme-openai",
        ANTHROPIC_API_KEY="sk-ant-readme",
        OPENROUTER_API_KEY="sk-or-readme",
        GROQ_API_KEY="gsk_readme",
        OPENAI_BASE_URL=fake.openai_base_url,
        ANTHROPIC_BASE_URL=fake.anthropic_base_url,
        OPENROUTER_BASE_URL=fake.openrouter_base_url,
        GROQ_BASE_URL=fake.groq_base_url,
        OLLAMA_BASE_URL=fake.openai_base_url,
        PYTHONPATH=str(ROOT),
    )
    script = tmp_path / "block.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.stdout.strip(), "a README example should show its result"
    assert "Traceback" not in done.stderr, done.stderr
