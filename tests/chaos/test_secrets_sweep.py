"""Secrets sweep: keys of odd shapes, echoed back by every provider in its errors, must not
reach any output channel a user or a log collector can see.

Each key is unique, and each provider flavour echoes it (JSON-escaped, as a real API would)
in a 401 body, a 200 reply that is not JSON, and an error event inside a stream. Every call
style runs against it (complete, acomplete, stream, astream, LangChain invoke/stream,
LlamaIndex chat/stream), with a second deployment on the same key to fall back to. Then every
channel is captured and grepped for the key and its obvious encodings: str/repr of each error
and its whole __cause__/__context__ chain and group members, formatted tracebacks, pickles,
log records of every logger at DEBUG, router events, LangChain callbacks (on_llm_error
included), LlamaIndex instrumentation events, OpenTelemetry spans (content capture on),
the SQLite ledger and cache
files, health(), the reprs of Router, Deployment and both framework models, LangChain's
dumps()/identifying params/llm string and LlamaIndex's metadata/to_json(). The same secret
also rides in each deployment's base URL (a proxy password, or an `?api_key=` query value).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import pickle
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from llmrouter_integrations import ConfigurationError, Deployment, RetryPolicy, Router
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

_TAG = uuid.uuid4().hex[:8]
KEYS = {
    "backslash": f"sk-sweep\\back\\slash-{_TAG}",
    "quotes": f"sk-sweep\"dq'sq-{_TAG}",
    "short": "Kq~5#",
    "long": f"sk-sweep-{_TAG}-" + "Zx9" * 60,
    "base64ish": f"c2sK{_TAG}+/ZXlz/dGVz+dA==",
    "percent": f"sk-%41%2F-{_TAG}%",
    "spaces": f"sk sweep {_TAG} key",
    "html": f"<sk-{_TAG}>&amp;",
}
FLAVORS = {
    "openai": ("openai", "openai_base_url"),
    "anthropic": ("anthropic", "anthropic_base_url"),
    "groq": ("groq", "groq_base_url"),
    "openrouter": ("openrouter", "openrouter_base_url"),
}
FAST = RetryPolicy(max_attempts=2, initial_backoff_s=0.001, jitter=0)


def forms(key: str) -> list[str]:
    """The key and the encodings a leak could take."""
    found = {
        key,
        json.dumps(key)[1:-1],
        repr(key)[1:-1],
        quote(key, safe=""),
        quote_plus(key, safe=""),
        base64.b64encode(key.encode()).decode(),
        base64.b64encode(f"Bearer {key}".encode()).decode(),
        base64.b64encode(f"sweep:{key}".encode()).decode(),  # Basic auth from the URL
    }
    return sorted(found, key=len, reverse=True)


def echo_body(flavor: str, key: str) -> str:
    message = f"Incorrect API key provided: {key}. You passed {key}"
    if flavor == "anthropic":
        return json.dumps(
            {"type": "error", "error": {"type": "authentication_error", "message": message}}
        )
    return json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": key}})


def echo_stream(flavor: str, key: str) -> list[str]:
    return [f"event: error\ndata: {echo_body(flavor, key)}\n\n"]


class Capture:
    """Everything the sweep greps, as text or bytes."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.blobs: list[bytes] = []

    def error(self, error: BaseException) -> None:
        self.texts.append("".join(traceback.format_exception(error)))
        self.blobs.append(pickle.dumps(error))
        for link in _every_link(error):
            self.texts.append(f"{type(link).__name__}: {link!s} {link!r}")
            self.texts.append(repr(getattr(link, "args", ())))
            self.texts.append(repr(vars(link)) if hasattr(link, "__dict__") else "")
            for attempt in getattr(link, "attempts", ()) or ():
                self.texts.append(repr(attempt))

    def leaks(self, key: str) -> list[str]:
        found = []
        for form in forms(key):
            for text in self.texts:
                if form in text:
                    at = text.index(form)
                    found.append(f"{form!r} in ...{text[max(0, at - 60) : at + 20]!r}")
                    break
            encoded = form.encode()
            if any(encoded in blob for blob in self.blobs):
                found.append(f"{form!r} in bytes")
        return found


def _every_link(error: BaseException) -> Iterator[BaseException]:
    seen: list[BaseException] = []
    todo = [error]
    while todo:
        link = todo.pop()
        if any(link is old for old in seen):
            continue
        seen.append(link)
        yield link
        todo += [x for x in (link.__cause__, link.__context__) if x is not None]
        todo += list(getattr(link, "exceptions", ()) or ())
        todo += [a.error for a in getattr(link, "attempts", ()) or () if a.error is not None]


class _AllRecords(logging.Handler):
    def __init__(self, capture: Capture) -> None:
        super().__init__(logging.DEBUG)
        self.capture = capture
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.capture.texts.append(self.format(record))
        self.capture.texts.append(repr(record.args) + repr(vars(record)))


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:  # any key is accepted; scripted models echo it
        yield server


def _deployments(fake: FakeProviderServer, flavor: str, key: str, fault: str) -> list[Deployment]:
    provider, url_attribute = FLAVORS[flavor]
    # The same secret rides in the URL: as the password of a proxy in front (Anthropic's key
    # has its own header, so Basic auth fits beside it) or as a query parameter.
    base = getattr(fake, url_attribute)
    if flavor == "anthropic":
        base = base.replace("http://", f"http://sweep:{quote(key, safe='')}@", 1)
    else:
        base += f"?api_key={quote(key, safe='')}&api-version=1"
    echo_model = f"echo-{flavor}-{fault}"
    if fault == "401":
        behavior = ModelBehavior(raw_body=echo_body(flavor, key), raw_status=401)
    elif fault == "not_json":
        behavior = ModelBehavior(raw_body=f"<html>proxy error for key {key}</html>")
    else:
        behavior = ModelBehavior(raw_stream=echo_stream(flavor, key))
    fake.set_behavior(echo_model, behavior)
    price = {"input": 1.0, "output": 2.0}
    return [
        Deployment(provider, echo_model, api_key=key, base_url=base, price=price, name="echo"),
        Deployment(
            provider, f"good-{flavor}", api_key=key, base_url=base, price=price, name="good"
        ),
    ]


async def _router_calls(router: Router, capture: Capture, fallback_ok: bool) -> None:
    async def attempt(call: Any) -> None:
        try:
            result = await call()
            capture.texts.append(repr(result))
        except Exception as error:  # the sweep wants every error, of any type
            capture.error(error)

    async def astream() -> list[Any]:
        return [chunk async for chunk in router.astream("hello", max_tokens=20)]

    await attempt(lambda: router.acomplete("hello", max_tokens=20))
    await attempt(astream)
    await attempt(lambda: asyncio.to_thread(router.complete, "hello sync", max_tokens=20))
    await attempt(lambda: asyncio.to_thread(lambda: list(router.stream("hi sync", max_tokens=20))))


@pytest.mark.parametrize("fault", ["401", "not_json", "stream_event"])
@pytest.mark.parametrize("flavor", list(FLAVORS))
async def test_no_key_in_any_channel(
    fake: FakeProviderServer, flavor: str, fault: str, tmp_path: Path
) -> None:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.load import dumps
    from llama_index.core.base.llms.types import ChatMessage
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index_instrumentation import get_dispatcher
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from llmrouter_integrations import InstrumentationSettings
    from llmrouter_integrations.langchain import ChatLLMRouter
    from llmrouter_integrations.llama_index import LLMRouter

    capture = Capture()
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    otel = InstrumentationSettings(tracer_provider=tracer_provider, capture_content=True)

    class Everything(BaseCallbackHandler):
        def __getattribute__(self, name: str) -> Any:
            if name.startswith("on_"):
                return lambda *args, **kwargs: capture.texts.append(f"{name} {args!r} {kwargs!r}")
            return super().__getattribute__(name)

    class LlamaEvents(BaseEventHandler):
        @classmethod
        def class_name(cls) -> str:
            return "SweepEvents"

        def handle(self, event: Any, **kwargs: Any) -> None:
            capture.texts.append(repr(event) + repr(kwargs))

    handler = _AllRecords(capture)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    dispatcher = get_dispatcher()
    llama_handler = LlamaEvents()
    dispatcher.add_event_handler(llama_handler)
    try:
        for name, key in KEYS.items():
            deployments = _deployments(fake, flavor, key, fault)
            capture.texts.append(repr(deployments))
            router = Router(
                deployments=deployments,
                strategy="priority",
                retry=FAST,
                on_event=lambda event: capture.texts.append(repr(event)),
                ledger=f"sqlite:///{tmp_path / f'ledger-{name}.db'}",
                cache=f"sqlite:///{tmp_path / f'cache-{name}.db'}",
                instrument=otel,
            )
            only_echo = Router(deployments=deployments[:1], retry=FAST)
            try:
                await _router_calls(router, capture, fallback_ok=True)
                await _router_calls(only_echo, capture, fallback_ok=False)
                chat = ChatLLMRouter(router=only_echo, callbacks=[Everything()])
                llm = LLMRouter(router=only_echo)
                capture.texts += [repr(router), repr(chat), repr(llm), repr(router.health())]
                capture.texts += [dumps(chat), repr(chat._identifying_params)]
                capture.texts += [chat._get_llm_string(), repr(llm.metadata), llm.to_json()]
                for call in (
                    chat.ainvoke("hi"),
                    _collect(chat.astream("hi")),
                    llm.achat([ChatMessage(role="user", content="hi")]),
                    _collect_llama(llm, "hi"),
                ):
                    try:
                        capture.texts.append(repr(await call))
                    except Exception as error:
                        capture.error(error)
                capture.texts.append(repr(router.costs.report()))
            finally:
                await router.aclose()
                await only_echo.aclose()
            for span in spans.get_finished_spans():
                capture.texts.append(span.to_json())
            spans.clear()
            for path in tmp_path.glob(f"*-{name}.db*"):
                capture.blobs.append(path.read_bytes())
            leaks = capture.leaks(key)
            assert not leaks, f"{flavor}/{fault}: key {name!r} leaked: {leaks[:3]}"
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        dispatcher.event_handlers = [h for h in dispatcher.event_handlers if h is not llama_handler]


async def _collect(stream: Any) -> list[Any]:
    return [item async for item in stream]


async def _collect_llama(llm: Any, text: str) -> list[Any]:
    from llama_index.core.base.llms.types import ChatMessage

    return [item async for item in await llm.astream_chat([ChatMessage(role="user", content=text)])]


@pytest.mark.parametrize("key", ["sk-unicode-é-key", "sk-newline\n", "sk-\x00nul", "\u2028"])
def test_keys_refused_at_construction_do_not_leak(key: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Router(deployments=[Deployment("openai", "gpt-4o-mini", api_key=key)])
    capture = Capture()
    capture.error(caught.value)
    assert not capture.leaks(key.strip() or key)
