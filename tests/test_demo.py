"""`llmrouter demo` shows what it announces: a failed attempt, the fallback that saved it, the cost.

It also runs in a core-only install: a missing optional package skips its section with the
exact pip command instead of a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Makes the named top-level packages look uninstalled, as on a core-only install.
_HIDE = """
import importlib.abc, sys
class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {hidden!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Hide())
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _demo(hidden: set[str]) -> str:
    done = _run(
        _HIDE.format(hidden=hidden)
        + "from llmrouter_integrations.cli.main import main\n"
        + "raise SystemExit(main(['demo']))\n"
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def test_demo_shows_the_failed_attempt_the_fallback_and_the_cost() -> None:
    out = _demo(set())
    section2 = out.split("2. The first provider breaks", 1)[1].split("\n3. ", 1)[0]
    assert (
        "event: fallback openai/gpt-4o-mini -> anthropic/claude-haiku-4-5 (OverloadedError: "
        in section2
    )
    assert "served by anthropic/claude-haiku-4-5" in section2
    assert "failed first: openai/gpt-4o-mini: OverloadedError" in section2
    assert "Total spend     $" in out and "anthropic" in out.split("4. What it cost", 1)[1]
    langchain = out.split("5. LangChain", 1)[1].split("\n6. ", 1)[0]
    assert "model [openai/gpt-4o-mini] calls get_temperature" in langchain
    assert "model [anthropic/claude-haiku-4-5]" in langchain
    assert "Fallbacks: 1" in langchain or "Fallbacks: 2" in langchain
    assert "Total Cost (USD): $" in langchain
    llamaindex = out.split("6. LlamaIndex", 1)[1]
    assert "fallback openai/gpt-4o-mini -> anthropic/claude-haiku-4-5" in llamaindex
    assert "skipped" not in out


def test_demo_without_langchain_names_the_pip_command() -> None:
    out = _demo({"langchain"})
    assert (
        "5. LangChain: ChatLLMRouter: skipped (the LangChain demo needs langchain, which is "
        "not installed: pip install 'llmrouter_integrations[all]')"
    ) in out
    assert "6. LlamaIndex: LLMRouter\n" in out  # the rest still runs


def test_framework_subpackages_name_their_extra_when_missing() -> None:
    for hidden, subpackage, package, extra in (
        ("langchain_core", "langchain", "langchain-core", "langchain"),
        ("llama_index", "llama_index", "llama-index-core", "llama-index"),
    ):
        done = _run(_HIDE.format(hidden={hidden}) + f"import llmrouter_integrations.{subpackage}\n")
        assert done.returncode == 1
        last = done.stderr.strip().splitlines()[-1]
        assert last == (
            f"ModuleNotFoundError: llmrouter_integrations.{subpackage} needs {package}, which is "
            f"not installed: pip install 'llmrouter_integrations[{extra}]'"
        ), last
