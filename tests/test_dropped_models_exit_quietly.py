"""Models dropped without close() leave nothing printed at exit, as ChatOpenAI does.

Each case runs in its own interpreter (the warnings come from garbage collection and
interpreter teardown), against a FakeProviderServer in that process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, sys
    from llmrouter_integrations.testing import FakeProviderServer

    fake = FakeProviderServer()
    fake.start()
    deployments = [{"provider": "openai", "model": "gpt-4o-mini",
                    "api_key": "sk-test-0123456789", "base_url": fake.openai_base_url}]
    kind = sys.argv[1]

    if kind == "langchain":
        from llmrouter_integrations.langchain import ChatLLMRouter

        def make():
            return ChatLLMRouter(deployments=deployments)

        def use(model):
            model.invoke("hi")
            list(model.stream("hi"))

        async def ause(model):
            await model.ainvoke("hi")
            async for _ in model.astream("hi"):
                pass
    else:
        from llama_index.core.llms import ChatMessage
        from llmrouter_integrations.llama_index import LLMRouter

        question = [ChatMessage(role="user", content="hi")]

        def make():
            return LLMRouter(deployments=deployments)

        def use(model):
            model.chat(question)
            list(model.stream_chat(question))

        async def ause(model):
            await model.achat(question)
            async for _ in await model.astream_chat(question):
                pass

    def dropped_in_a_cycle():
        model = make()
        use(model)                  # the sync bridge's loop
        asyncio.run(ause(model))    # a loop of the caller's, closed after

    for _ in range(12):  # the collector's order varies: several tries catch a bad one
        dropped_in_a_cycle()
        gc.collect()
    kept = asyncio.new_event_loop()  # a loop the program never closes
    model = make()
    kept.run_until_complete(ause(model))
    use(model)
    print("done")
    """
)


@pytest.mark.parametrize("kind", ["langchain", "llama_index"])
def test_a_model_never_closed_prints_nothing(kind: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, kind], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "done"
    assert "Unclosed" not in run.stderr and "Unclosed" not in run.stdout, run.stderr
    assert run.stderr == ""
