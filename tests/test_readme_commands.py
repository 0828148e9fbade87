"""README's two set-up commands: the ones .ci/run executes, pinned to the lock."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


def _pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pairs = (line.split("==") for line in lines if line and not line.startswith("#"))
    return {canonicalize_name(name): version for name, version in pairs}


def test_lock_pins_every_pyproject_requirement_within_its_range() -> None:
    # Adding a dependency to pyproject without re-running scripts/lock fails here.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    pins = _pins()
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name == "llmrouter-integrations":
            continue
        assert name in pins, f"{text} is in pyproject.toml but not in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (text, pins[name])


def test_python_version_claims_agree_with_what_ci_runs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    classifiers = [
        c for c in pyproject["project"]["classifiers"] if re.fullmatch(r".*Python :: 3\.\d+", c)
    ]
    assert classifiers == ["Programming Language :: Python :: 3.11"]
    assert pyproject["project"]["requires-python"] == ">=3.11"
    assert pyproject["tool"]["mypy"]["python_version"] == "3.11"
    assert pyproject["tool"]["ruff"]["target-version"] == "py311"
    assert "CPython 3.11" in (ROOT / "constraints.txt").read_text().splitlines()[1]
