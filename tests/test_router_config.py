"""Router construction: keyword typos are named, the caller's Deployments stay untouched,
and every tool_choice spelling means the same in the Router and both adapters."""

from __future__ import annotations

from typing import Any

import pytest

from llmrouter_integrations import APILoader, Deployment, Router
from llmrouter_integrations.testing import FakeProviderServer

KEY = "sk-test-openai-0123456789abcdef"


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [("budget", "budgets"), ("cach", "cache"), ("strategie", "strategy"), ("timout", "timeout")],
)
def test_a_misspelt_keyword_is_a_type_error_naming_the_closest(typo: str, suggestion: str) -> None:
    with pytest.raises(TypeError) as caught:
        Router(["openai/gpt-4o-mini"], environ={"OPENAI_API_KEY": KEY}, **{typo: "memory"})
    message = str(caught.value)
    assert repr(typo) in message
    assert f"did you mean {suggestion!r}" in message


def test_an_unrelated_keyword_lists_the_valid_ones() -> None:
    with pytest.raises(TypeError) as caught:
        Router(["openai/gpt-4o-mini"], environ={"OPENAI_API_KEY": KEY}, zzz=1)
    assert "'zzz'" in str(caught.value)
    assert "budgets" in str(caught.value) and "cache" in str(caught.value)


def test_apiloader_names_the_typo_too() -> None:
    with pytest.raises(TypeError, match="did you mean 'budgets'"):
        APILoader(provider="openai", api_keys={"openai": KEY}, budget=[])


def test_the_deployments_passed_in_are_never_mutated() -> None:
    given = Deployment(provider="openai", model="gpt-4o-mini")
    router = Router([given], environ={"OPENAI_API_KEY": KEY})
    try:
        assert given.api_key is None  # the env's key went into the router's own copy
        assert router.deployments[0].api_key is not None
        assert router.deployments[0].api_key.get_secret_value() == KEY
        assert router.deployments[0] is not given
    finally:
        router.close()


def test_one_deployment_object_serves_two_routers_with_different_env_keys() -> None:
    shared = Deployment(provider="openai", model="gpt-4o-mini")
    first = Router([shared], environ={"OPENAI_API_KEY": KEY + "-one"})
    second = Router([shared], environ={"OPENAI_API_KEY": KEY + "-two"})
    try:
        keys = [r.deployments[0].api_key.get_secret_value() for r in (first, second)]  # type: ignore[union-attr]
        assert keys == [KEY + "-one", KEY + "-two"]
    finally:
        first.close()
        second.close()


SPELLINGS: list[tuple[Any, str | None]] = [
    (None, None),
    (False, None),
    (True, "required"),
    ("any", "required"),
    ("required", "required"),
    ("auto", "auto"),
    ("none", "none"),
    ("tool", "tool"),  # a tool may be called "tool": a string that is no keyword is a name
    ("get_weather", "get_weather"),
    ({"type": "function", "function": {"name": "f"}}, "f"),
    ({"type": "tool", "name": "g"}, "g"),
    ({"type": "any"}, "required"),
    ({"type": "auto"}, "auto"),
    ({"type": "none"}, "none"),
]


@pytest.mark.parametrize(("choice", "expected"), SPELLINGS)
def test_tool_choice_means_the_same_everywhere(choice: Any, expected: str | None) -> None:
    from llmrouter_integrations.langchain._tools import to_tool_choice
    from llmrouter_integrations.llama_index._convert import normalise_tool_choice

    router = Router(["openai/gpt-4o-mini"], environ={"OPENAI_API_KEY": KEY})
    try:
        # A request's tool_choice must name one of its tools (checked before sending).
        tools = [
            {"name": name, "parameters": {"type": "object", "properties": {}}}
            for name in ("tool", "get_weather", "f", "g")
        ]
        request = router.build_request("hi", tools=tools, tool_choice=choice)
    finally:
        router.close()
    assert request.tool_choice == expected
    assert to_tool_choice(choice) == expected
    assert normalise_tool_choice(choice) == expected


def test_a_tool_named_tool_is_forced_on_the_wire() -> None:
    tool = {"name": "tool", "parameters": {"type": "object", "properties": {}}}
    with FakeProviderServer(valid_keys=[KEY]) as fake:
        deployment = Deployment("openai", "gpt-4o-mini", api_key=KEY, base_url=fake.openai_base_url)
        with Router([deployment]) as router:
            router.complete("hi", tools=[tool], tool_choice="tool", max_tokens=20)
        body = fake.requests[-1].body
    assert body["tool_choice"] == {"type": "function", "function": {"name": "tool"}}


def test_a_tool_spec_is_built_the_same_way_everywhere() -> None:
    from langchain_core.tools import tool as langchain_tool
    from llama_index.core.tools import FunctionTool

    from llmrouter_integrations.langchain._tools import to_tool_spec
    from llmrouter_integrations.llama_index._convert import tools_to_specs

    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    from_langchain = to_tool_spec(langchain_tool(add))
    (from_llama_index,) = tools_to_specs([FunctionTool.from_defaults(fn=add)])
    for spec in (from_langchain, from_llama_index):
        assert spec.name == "add" and "Add two integers" in spec.description
        assert set(spec.parameters["properties"]) == {"a", "b"}

    marked = {
        "type": "function",
        "function": {"name": "add", "parameters": {"type": "object", "properties": {}}},
        "cache_control": {"type": "ephemeral"},
    }
    router = Router(["anthropic/claude-haiku-4-5"], environ={"ANTHROPIC_API_KEY": KEY})
    try:
        (spec,) = router.build_request("hi", tools=[marked]).tools or []
    finally:
        router.close()
    assert spec.cache_control == {"type": "ephemeral"}  # a Router dict keeps its breakpoint
    assert to_tool_spec(marked).cache_control == {"type": "ephemeral"}
