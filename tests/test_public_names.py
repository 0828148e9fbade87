"""Every name README.md or DESIGN.md tells users to import can be imported from where it says.

Two sources: `from llmrouter_integrations[.sub] import A, B` lines, and public-looking class
names in the prose (errors, strategies, policies, stores, handlers...), which must be exported
by the package or one of the subpackages the README names. `__all__` stays explicit and true.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# DESIGN.md is the team's contract, kept outside the repository; checked where it exists.
DOCS = {"README.md": ROOT / "README.md", "DESIGN.md": Path("/work/shared/DESIGN.md")}
DOC_TEXT = "\n".join(path.read_text() for path in DOCS.values() if path.exists())

# Where the README tells users to import from.
PUBLIC_MODULES = (
    "llmrouter_integrations",
    "llmrouter_integrations.errors",
    "llmrouter_integrations.langchain",
    "llmrouter_integrations.llama_index",
    "llmrouter_integrations.testing",
)
# Named in the docs but not ours to export: Python's, the frameworks', or the architecture.
NOT_OURS = {
    "TypeError",
    "RecursionError",
    "OverflowError",
    "TokenCountingHandler",  # LlamaIndex's own handler
    "ChatBackend",  # the layers' internal interface, described in "Layout"
}
_IMPORT = re.compile(
    r"from (llmrouter_integrations[\w.]*) import \(?([\w\s,]+?)\)?\s*(?:#|$)", re.M
)
_PROSE_NAME = re.compile(
    r"\b[A-Z][A-Za-z]+(?:Error|Strategy|Policy|Store|Handler|Health|Clock|Backend|Server)\b"
)


def _imports() -> list[tuple[str, str]]:
    found = []
    for module, names in _IMPORT.findall(DOC_TEXT):
        found += [(module, name.strip()) for name in names.split(",") if name.strip()]
    return sorted(set(found))


def test_docs_were_read() -> None:
    assert len(_imports()) >= 8


@pytest.mark.parametrize(("module", "name"), _imports(), ids=lambda v: str(v))
def test_documented_import_works(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name), f"from {module} import {name}"


@pytest.mark.parametrize("name", sorted(set(_PROSE_NAME.findall(DOC_TEXT)) - NOT_OURS))
def test_name_in_prose_is_exported(name: str) -> None:
    homes = [
        m for m in PUBLIC_MODULES if name in getattr(importlib.import_module(m), "__all__", ())
    ]
    assert homes, f"{name} is named in README/DESIGN but no public module exports it"


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_all_is_explicit_and_true(module: str) -> None:
    imported = importlib.import_module(module)
    exported = imported.__all__
    assert len(exported) == len(set(exported))
    missing = [name for name in exported if not hasattr(imported, name)]
    assert not missing, missing
