"""README's two set-up commands: the ones .ci/run executes, pinned to the lock."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "readme_commands.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()


def test_readme_has_the_two_commands_ci_runs() -> None:
    demo, suite = _commands()
    for command in (demo, suite):
        assert command.startswith("python3 -m venv .venv && .venv/bin/pip install ")
        assert " -c constraints.txt " in command, "installs must use the lock"
    assert demo.endswith(".venv/bin/llmrouter demo") and "'.[all]'" in demo
    assert suite.endswith(".venv/bin/python -m pytest -q") and "'.[test]'" in suite
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/readme_commands.py" in ci


def test_lock_pins_every_requirement_exactly() -> None:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pins = [line for line in lines if line and not line.startswith("#")]
    assert pins, "constraints.txt is empty"
    for pin in pins:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+!\-]+", pin), pin
    names = {pin.split("==")[0].lower().replace("_", "-") for pin in pins}
    for needed in ("langchain", "langchain-core", "llama-index-core", "pytest", "mypy", "ruff"):
        assert needed in names, f"{needed} is not pinned"
