"""The LlamaIndex part of `llmrouter demo` runs offline and tells the fallback-and-cost story."""

from __future__ import annotations

from llama_index.core import Settings

from llmrouter_integrations.llama_index.demo import run_llamaindex_demo
from llmrouter_integrations.testing import FakeProviderServer


def test_demo_shows_query_agent_fallback_and_cost(fake: FakeProviderServer) -> None:
    before = (Settings._llm, fake.behavior("gpt-4o-mini"))
    lines: list[str] = []
    run_llamaindex_demo(fake, lines.append)
    text = "\n".join(lines)
    assert "A: The Eiffel Tower is 330 metres tall and stands in Paris." in text
    assert "tool add(a=3, b=4) -> 7" in text and "tool multiply(a=3, b=4) -> 12" in text
    assert "router event: fallback openai/gpt-4o-mini -> anthropic/claude-haiku-4-5" in text
    assert "A: The tools returned 7 and 12.   [served by anthropic/claude-haiku-4-5]" in text
    assert "openai" in text and "anthropic" in text and "over 3 LLM calls" in text
    # It leaves the shared fake and LlamaIndex's global Settings as it found them.
    assert (Settings._llm, fake.behavior("gpt-4o-mini")) == before
