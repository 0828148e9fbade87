"""Helpers for the LangChain tests: deployments on the fake server and models over them."""

from __future__ import annotations

from typing import Any

from llmrouter_integrations.langchain import ChatLLMRouter
from llmrouter_integrations.testing import FakeProviderServer

OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
TEST_KEY = "sk-test-0123456789"


def deployments(server: FakeProviderServer, first: str = "openai") -> list[dict[str, Any]]:
    """An OpenAI-format and an Anthropic-format deployment on the fake, `first` first."""
    openai = {
        "provider": "openai",
        "model": OPENAI_MODEL,
        "base_url": server.openai_base_url,
        "api_key": TEST_KEY,
    }
    anthropic = {
        "provider": "anthropic",
        "model": ANTHROPIC_MODEL,
        "base_url": server.anthropic_base_url,
        "api_key": TEST_KEY,
    }
    return [openai, anthropic] if first == "openai" else [anthropic, openai]


def make_model(server: FakeProviderServer, first: str = "openai", **kwargs: Any) -> ChatLLMRouter:
    """A ChatLLMRouter over both fake deployments; retries off so fallback is immediate."""
    kwargs.setdefault("max_retries", 0)
    return ChatLLMRouter(strategy="priority", deployments=deployments(server, first), **kwargs)
