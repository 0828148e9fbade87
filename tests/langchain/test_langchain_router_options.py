"""ChatLLMRouter takes every Router option a user sets per model under Router's own name
(LlamaIndex's LLMRouter passes its keyword arguments to Router as they are)."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import pytest
from langchain_core.load import dumps, loads
from langchain_fakes import ANTHROPIC_MODEL, OPENAI_MODEL, deployments, make_model

from llmrouter_integrations import BreakerPolicy, Router
from llmrouter_integrations.errors import AllDeploymentsFailedError
from llmrouter_integrations.langchain import ChatLLMRouter
from llmrouter_integrations.llama_index import LLMRouter
from llmrouter_integrations.testing import FakeProviderServer

# Plumbing rather than policy: objects handed through router_kwargs= (ChatOpenAI has no
# such fields either); `timeout` is a per-request option of both models.
_PLUMBING = {"deployments", "transport", "http_client", "clock", "environ", "timeout"}


def _router_options() -> set[str]:
    parameters = inspect.signature(Router.__init__).parameters
    names = {n for n, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    return names - _PLUMBING


def test_every_router_option_is_a_chat_model_field() -> None:
    fields = set(ChatLLMRouter.model_fields) | {"cache"}  # cache="..." is the router's cache
    assert _router_options() - fields == set()


class _Recording(Router):
    seen: ClassVar[dict[str, Any]] = {}

    def __init__(self, deployments: Any, **options: Any) -> None:
        type(self).seen = options
        super().__init__(deployments, **options)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("breaker", BreakerPolicy(failure_threshold=2)),
        ("cache_ttl_s", 30.0),
        ("max_queue_wait", None),  # None: no limit, not "the default"
        ("rate_limit_wait", 0.5),
        ("strict_params", True),
        ("prompt_cache", "auto"),
        ("cache", "memory"),
    ],
)
def test_each_option_reaches_the_router(
    fake: FakeProviderServer, monkeypatch: pytest.MonkeyPatch, name: str, value: Any
) -> None:
    monkeypatch.setattr("llmrouter_integrations.langchain.chat_model.Router", _Recording)
    model = make_model(fake, **{name: value})
    try:
        assert name in _Recording.seen and _Recording.seen[name] is value
    finally:
        model.close()
    with pytest.raises(ValueError, match="not both"):
        ChatLLMRouter(router=model.llm_router, **{name: value})


def test_unset_options_keep_the_router_defaults(
    fake: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("llmrouter_integrations.langchain.chat_model.Router", _Recording)
    make_model(fake).close()
    assert not {"max_queue_wait", "rate_limit_wait", "strict_params"} & set(_Recording.seen)


def test_strict_params_raises_instead_of_dropping(fake: FakeProviderServer) -> None:
    # gpt-4o-mini takes no reasoning: strict, the router skips it for Claude, and with
    # only gpt-4o-mini left it refuses instead of sending the call without reasoning.
    model = make_model(fake, strict_params=True, reasoning="low")
    sent = fake.request_count(OPENAI_MODEL)
    try:
        assert model.invoke("hi").response_metadata["model_name"] == ANTHROPIC_MODEL
        with pytest.raises(AllDeploymentsFailedError) as caught:
            model.invoke("hi", deployments=[f"openai/{OPENAI_MODEL}"])
        assert "does not take reasoning" in str(caught.value.exceptions[0])
        assert fake.request_count(OPENAI_MODEL) == sent
    finally:
        model.close()


def test_prompt_cache_auto_places_breakpoints(fake: FakeProviderServer) -> None:
    model = make_model(fake, first="anthropic", prompt_cache="auto")
    try:
        model.invoke([("system", "Rules. " * 800), ("user", "hi")])
    finally:
        model.close()
    body = fake.requests_for(ANTHROPIC_MODEL)[-1].body
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}


def test_plain_options_survive_dumps_and_loads(
    fake: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMROUTER_API_KEY", "sk-from-env-0123")  # keys are never dumped
    model = ChatLLMRouter(
        deployments=deployments(fake),
        strict_params=True,
        prompt_cache="auto",
        rate_limit_wait=None,
        cache_ttl_s=60.0,
    )
    loaded = loads(
        dumps(model),
        allowed_objects=[ChatLLMRouter],
        valid_namespaces=["llmrouter_integrations"],
        secrets_from_env=True,
    )
    try:
        fields = ("strict_params", "prompt_cache", "rate_limit_wait", "cache_ttl_s")
        assert [getattr(loaded, n) for n in fields] == [True, "auto", None, 60.0]
        assert "rate_limit_wait" in loaded.model_fields_set
    finally:
        model.close()
        loaded.close()


@pytest.mark.parametrize("name", sorted(_router_options()))
def test_llama_index_hands_every_option_to_the_router(
    fake: FakeProviderServer, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # LLMRouter(**kwargs) passes what is not an LLM field to Router: no option is taken
    # for a LlamaIndex field of the same name and silently lost.
    values: dict[str, Any] = {
        "strategy": "priority", "retry": None, "breaker": BreakerPolicy(failure_threshold=2),
        "fallback_on": None, "budgets": [], "ledger": "memory", "cache": "memory",
        "cache_ttl_s": 30.0, "max_queue_wait": None, "rate_limit_wait": 0.5, "on_event": print,
        "state": None, "state_failure": "local", "instrument": None, "strict_params": True,
        "prompt_cache": "auto",
    }  # fmt: skip
    monkeypatch.setattr("llmrouter_integrations.llama_index.llm.Router", _Recording)
    llm = LLMRouter(deployments=deployments(fake), **{name: values[name]})
    llm.router.close()
    assert name in _Recording.seen and _Recording.seen[name] is values[name]
