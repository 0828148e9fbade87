"""TokenCountingHandler counts exactly what the provider reported, once per call.

The fake reports fixed usage (321 prompt, 17 completion tokens per call), numbers no
tokenizer would produce from the text, so a handler that fell back to re-tokenising, or
that saw a call twice, would give different totals.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llamaindex_support import anthropic_deployment, make_router, openai_deployment

from llmrouter_integrations.llama_index import LLMRouter
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

PROMPT_TOKENS = 321
COMPLETION_TOKENS = 17


@pytest.fixture(params=["openai", "anthropic"])
def counted(
    fake: FakeProviderServer, request: pytest.FixtureRequest
) -> Iterator[tuple[LLMRouter, TokenCountingHandler, str]]:
    model = f"counted-{request.param}"
    fake.set_behavior(
        model, ModelBehavior(usage={"input": PROMPT_TOKENS, "output": COMPLETION_TOKENS})
    )
    make = openai_deployment if request.param == "openai" else anthropic_deployment
    router = make_router(make(fake, model=model))
    counter = TokenCountingHandler()
    llm = LLMRouter(router=router, callback_manager=CallbackManager([counter]))
    try:
        yield llm, counter, model
    finally:
        router.close()


async def test_every_method_counts_the_reported_usage_once(
    fake: FakeProviderServer, counted: tuple[LLMRouter, TokenCountingHandler, str]
) -> None:
    llm, counter, model = counted
    messages = [ChatMessage(role="user", content="count me")]
    llm.chat(messages)
    await llm.achat(messages)
    list(llm.stream_chat(messages))
    async for _ in await llm.astream_chat(messages):
        pass
    llm.complete("count me")
    await llm.acomplete("count me")
    list(llm.stream_complete("count me"))
    async for _ in await llm.astream_complete("count me"):
        pass

    calls = fake.request_count(model)
    assert calls == 8
    assert len(counter.llm_token_counts) == calls
    assert counter.prompt_llm_token_count == calls * PROMPT_TOKENS
    assert counter.completion_llm_token_count == calls * COMPLETION_TOKENS
    assert counter.total_llm_token_count == calls * (PROMPT_TOKENS + COMPLETION_TOKENS)


def test_counts_through_a_query_engine_and_settings_callback_manager(
    fake: FakeProviderServer, counted: tuple[LLMRouter, TokenCountingHandler, str]
) -> None:
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    llm, _, model = counted
    counter = TokenCountingHandler()
    saved = (Settings._llm, Settings._embed_model, Settings._callback_manager)
    try:
        Settings.llm = llm
        Settings.embed_model = MockEmbedding(embed_dim=8)
        Settings.callback_manager = CallbackManager([counter])
        index = VectorStoreIndex.from_documents([Document(text="Tokens are counted here.")])
        before = fake.request_count(model)
        index.as_query_engine().query("Are tokens counted?")
        "".join(index.as_query_engine(streaming=True).query("And streamed?").response_gen)
        calls = fake.request_count(model) - before
    finally:
        Settings._llm, Settings._embed_model, Settings._callback_manager = saved
    assert calls == 2
    assert counter.prompt_llm_token_count == calls * PROMPT_TOKENS
    assert counter.completion_llm_token_count == calls * COMPLETION_TOKENS
