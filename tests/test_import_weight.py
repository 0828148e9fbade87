"""`import llmrouter_integrations` stays light: heavy dependencies load on first use.

Each check runs a fresh interpreter and lists the modules the import left in `sys.modules`
(the time itself is measured in benchmarks/bench_overhead.py, not asserted here).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import llmrouter_integrations

# Loaded by the first Router, call or store that needs them, never by the import.
HEAVY = (
    "aiohttp",
    "genai_prices",
    "httpx",
    "langchain_core",
    "llama_index",
    "opentelemetry",
    "pydantic",
    "redis",
    "sqlite3",
    "tenacity",
)


def _loaded_after(statement: str) -> set[str]:
    script = f"import sys\n{statement}\nimport json\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(result.stdout))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(name for name in modules if name.split(".")[0] in HEAVY)


def test_importing_the_package_loads_no_dependency_and_no_router() -> None:
    loaded = _loaded_after("import llmrouter_integrations")
    assert _heavy(loaded) == []
    assert "asyncio" not in loaded
    assert "llmrouter_integrations.router" not in loaded
    assert not any(name.startswith("llmrouter_integrations.layers") for name in loaded)


def test_importing_router_loads_no_http_client_pricing_or_store() -> None:
    loaded = _loaded_after("from llmrouter_integrations import Router, Deployment, Budget")
    assert _heavy(loaded) == []


def test_a_deployment_key_is_still_a_pydantic_secret() -> None:
    from pydantic import SecretStr

    deployment = llmrouter_integrations.Deployment("openai", "gpt-4o-mini", api_key="sk-abc")
    assert isinstance(deployment.api_key, SecretStr)
    assert "sk-abc" not in repr(deployment.api_key)


def test_every_exported_name_is_the_object_its_module_defines() -> None:
    lazy = llmrouter_integrations._LAZY
    assert set(lazy) <= set(llmrouter_integrations.__all__)
    for name in llmrouter_integrations.__all__:
        value = getattr(llmrouter_integrations, name)
        if name in lazy:
            home = importlib.import_module(lazy[name], "llmrouter_integrations")
            assert value is getattr(home, name)
    assert set(llmrouter_integrations.__all__) <= set(dir(llmrouter_integrations))


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        llmrouter_integrations.Routr  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as error:
        assert "Routr" in str(error)
    else:
        raise AssertionError("a misspelled name resolved")


def test_framework_models_over_deployments_build_in_a_fresh_interpreter() -> None:
    # Their pydantic models hold Deployments, whose key annotation names SecretStr: it must
    # resolve though the package no longer imports pydantic up front.
    script = """
from llmrouter_integrations import Deployment
from llmrouter_integrations.langchain import ChatLLMRouter
from llmrouter_integrations.llama_index import LLMRouter
deployment = Deployment("openai", "gpt-4o-mini", api_key="sk-x", base_url="http://127.0.0.1:9/v1")
print(type(ChatLLMRouter(deployments=[deployment]).deployments[0].api_key).__name__)
print(LLMRouter(deployments=[deployment]).metadata.model_name)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["SecretStr", "gpt-4o-mini"]
