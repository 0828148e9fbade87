"""Usage the provider did not report is estimated, and marked so wherever it surfaces:
`Usage.estimated`, LangChain `response_metadata["usage_estimated"]`, LlamaIndex `raw["usage"]`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmrouter_integrations import Deployment, Router
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

KEY = "sk-test-estimates-0123456789"
MODEL = "llama-3-local"
PRICE = {"input": 0.1, "output": 0.2}
REPLY_WITHOUT_USAGE = (
    '{"id":"c1","object":"chat.completion","model":"llama-3-local","choices":[{"index":0,'
    '"message":{"role":"assistant","content":"Hello there, how can I help?"},'
    '"finish_reason":"stop"}]}'
)
STREAM_WITHOUT_USAGE = [
    'data: {"id":"c1","model":"llama-3-local","choices":[{"index":0,"delta":'
    '{"content":"Hello there, how can I help?"}}]}\n\n',
    'data: {"id":"c1","model":"llama-3-local","choices":[{"index":0,"delta":{},'
    '"finish_reason":"stop"}]}\n\n',
    "data: [DONE]\n\n",
]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(valid_keys=[KEY]) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProviderServer) -> None:
    fake.reset()
    fake.set_behavior(MODEL, ModelBehavior())


def without_usage(fake: FakeProviderServer) -> None:
    fake.set_behavior(
        MODEL, ModelBehavior(raw_body=REPLY_WITHOUT_USAGE, raw_stream=list(STREAM_WITHOUT_USAGE))
    )


def router(fake: FakeProviderServer) -> Router:
    return Router(
        deployments=[
            Deployment("openai", MODEL, api_key=KEY, base_url=fake.openai_base_url, price=PRICE)
        ]
    )


async def test_router_marks_estimated_usage_in_replies_and_streams(
    fake: FakeProviderServer,
) -> None:
    without_usage(fake)
    async with router(fake) as r:
        response = await r.acomplete("hi")
        final = [chunk async for chunk in r.astream("hi")][-1]
    assert response.usage.estimated and response.usage.output_tokens > 0
    assert final.usage is not None and final.usage.estimated


async def test_reported_usage_is_not_marked(fake: FakeProviderServer) -> None:
    async with router(fake) as r:
        response = await r.acomplete("hi")
        final = [chunk async for chunk in r.astream("hi")][-1]
    assert not response.usage.estimated
    assert final.usage is not None and not final.usage.estimated


@pytest.mark.parametrize("streaming", [False, True])
async def test_langchain_marks_estimated_usage(fake: FakeProviderServer, streaming: bool) -> None:
    from llmrouter_integrations.langchain import ChatLLMRouter

    without_usage(fake)
    model = ChatLLMRouter(router=router(fake))
    if streaming:
        message = None
        async for chunk in model.astream("hi"):
            message = chunk if message is None else message + chunk
    else:
        message = await model.ainvoke("hi")
    assert message is not None and message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] > 0
    assert message.response_metadata["usage_estimated"] is True
    fake.set_behavior(MODEL, ModelBehavior())
    reported = await model.ainvoke("hi")
    assert "usage_estimated" not in reported.response_metadata


@pytest.mark.parametrize("streaming", [False, True])
async def test_llamaindex_marks_estimated_usage(fake: FakeProviderServer, streaming: bool) -> None:
    from llama_index.core.llms import ChatMessage

    from llmrouter_integrations.llama_index import LLMRouter

    without_usage(fake)
    llm = LLMRouter(router=router(fake))
    messages = [ChatMessage(role="user", content="hi")]
    if streaming:
        chunks = [chunk async for chunk in await llm.astream_chat(messages)]
        raw = chunks[-1].raw
    else:
        raw = (await llm.achat(messages)).raw
    assert isinstance(raw, dict) and raw["usage"]["estimated"] is True
    assert raw["usage"]["completion_tokens"] > 0
    fake.set_behavior(MODEL, ModelBehavior())
    reported = (await llm.achat(messages)).raw
    assert isinstance(reported, dict) and reported["usage"]["estimated"] is False
