"""The fake provider server over raw HTTP: failures, limits, records, config and reply rules."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest

from llmrouter_integrations.core.clock import ManualClock
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior
from llmrouter_integrations.testing._fake_replies import synthesize

KEY = "sk-test-raw-000000000000abcd"
OPENAI_HEADERS = {"Authorization": f"Bearer {KEY}"}
ANTHROPIC_HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


def chat(model: str = "m", text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def anthropic_chat(model: str = "c", text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"max_tokens": 100, **chat(model, text), **extra}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(fake: FakeProviderServer) -> None:
    fake.reset()


def post(fake: FakeProviderServer, path: str, body: Any, **kw: Any) -> httpx.Response:
    headers = kw.pop("headers", ANTHROPIC_HEADERS if path == "/v1/messages" else OPENAI_HEADERS)
    return httpx.post(fake.url + path, json=body, headers=headers, timeout=5, **kw)


def sse_data(raw: str) -> list[str]:
    return [line[len("data: ") :] for line in raw.split("\n") if line.startswith("data: ")]


# --- broken connections, stalls, garbage --------------------------------------------------------


def test_drop_after_chunks_breaks_the_stream_connection(fake: FakeProviderServer) -> None:
    fake.set_behavior("m", ModelBehavior(drop_after_chunks=2))
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST",
            fake.openai_base_url + "/chat/completions",
            json=chat(text="one two three four five", stream=True),
            headers=OPENAI_HEADERS,
        ) as response,
    ):
        assert response.status_code == 200
        for piece in response.iter_bytes():
            received += piece
    events = sse_data(received.decode())
    contents = [json.loads(e)["choices"][0]["delta"].get("content") for e in events]
    assert contents == ["", "Echo:", " one"]  # role chunk, then exactly two content chunks
    assert "[DONE]" not in received.decode()
    assert fake.requests[0].outcome == "dropped"


def test_drop_after_chunks_on_a_plain_response_truncates_the_body(fake: FakeProviderServer) -> None:
    fake.set_behavior("m", ModelBehavior(drop_after_chunks=0))
    with pytest.raises(httpx.RemoteProtocolError):
        post(fake, "/v1/chat/completions", chat())


async def test_drop_seen_by_aiohttp_as_payload_error(fake: FakeProviderServer) -> None:
    fake.set_behavior("c", ModelBehavior(drop_after_chunks=1))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            fake.anthropic_base_url + "/v1/messages",
            json=anthropic_chat(text="a b c", stream=True),
            headers=ANTHROPIC_HEADERS,
        ) as response,
    ):
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


def test_hang_hits_the_client_read_timeout_and_does_not_block_shutdown() -> None:
    server = FakeProviderServer({"m": ModelBehavior(hang=True)}).start()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            server.openai_base_url + "/chat/completions",
            json=chat(),
            headers=OPENAI_HEADERS,
            timeout=httpx.Timeout(5, read=0.2),
        )
    # A second hanging request is still open when the server stops.
    started = time.monotonic()
    with httpx.Client(timeout=10) as client, pytest.raises(httpx.TransportError):
        threading.Timer(0.2, server.stop).start()
        client.post(
            server.openai_base_url + "/chat/completions", json=chat(), headers=OPENAI_HEADERS
        )
    assert time.monotonic() - started < 5  # the default aiohttp grace would be 60 s
    assert server.requests[0].outcome == "hang"
    server.stop()  # idempotent


def test_malformed_json_body_and_stream(fake: FakeProviderServer) -> None:
    fake.set_behavior("m", ModelBehavior(malformed_json=True))
    response = post(fake, "/v1/chat/completions", chat())
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    streamed = post(fake, "/v1/chat/completions", chat(stream=True)).text
    data = sse_data(streamed)
    assert json.loads(data[0])["choices"][0]["delta"]["role"] == "assistant"
    with pytest.raises(json.JSONDecodeError):
        json.loads(data[1])


def test_html_502_like_a_load_balancer(fake: FakeProviderServer) -> None:
    fake.set_behavior("m", ModelBehavior(html_502=True, retry_after=1))
    response = post(fake, "/v1/chat/completions", chat())
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>502 Bad Gateway</h1>" in response.text
    assert response.headers["retry-after"] == "1"


def test_scripted_errors_then_success_and_runtime_changes(fake: FakeProviderServer) -> None:
    fake.set_behavior("m", ModelBehavior(errors=[429, 500], retry_after=2, x_should_retry=True))
    first = post(fake, "/v1/chat/completions", chat())
    assert first.status_code == 429
    assert first.json()["error"]["code"] == "rate_limit_exceeded"
    assert (first.headers["retry-after"], first.headers["x-should-retry"]) == ("2", "true")
    assert post(fake, "/v1/chat/completions", chat()).status_code == 500
    assert post(fake, "/v1/chat/completions", chat()).status_code == 200
    fake.update_behavior("m", permanent_error=503, error_message="down for lunch")
    gone = post(fake, "/v1/chat/completions", chat())
    assert (gone.status_code, gone.json()["error"]["message"]) == (503, "down for lunch")
    fake.set_behavior("m", ModelBehavior())
    assert post(fake, "/v1/chat/completions", chat()).status_code == 200
    assert fake.request_count("m") == 5
    fake.reset()
    assert fake.request_count() == 0 and fake.requests == []


def test_openrouter_mid_stream_error_chunk(fake: FakeProviderServer) -> None:
    fake.set_behavior("x/y", ModelBehavior(mid_stream_error=1))
    raw = post(fake, "/api/v1/chat/completions", chat("x/y", "a b c", stream=True)).text
    assert raw.startswith(": OPENROUTER PROCESSING\n\n")
    last = json.loads(sse_data(raw)[-1])
    assert last["error"]["code"] == 502
    assert last["choices"][0]["finish_reason"] == "error"


# --- rate limits -----------------------------------------------------------------------------


def test_rate_limit_window_follows_the_injected_clock() -> None:
    clock = ManualClock()
    models = {"m": ModelBehavior(rate_limit=2, rate_limit_window_s=60)}
    with FakeProviderServer(models, clock=clock) as server:
        remaining = []
        for _ in range(2):
            response = post(server, "/v1/chat/completions", chat())
            assert response.status_code == 200
            remaining.append(response.headers["x-ratelimit-remaining-requests"])
        assert remaining == ["1", "0"]
        clock.advance(15)
        limited = post(server, "/v1/chat/completions", chat())
        assert limited.status_code == 429
        assert limited.json()["error"]["type"] == "requests"
        assert limited.headers["retry-after-ms"] == "45000"
        assert limited.headers["retry-after"] == "45"
        assert limited.headers["x-ratelimit-limit-requests"] == "2"
        assert limited.headers["x-ratelimit-remaining-requests"] == "0"
        assert limited.headers["x-ratelimit-reset-requests"] == "45s"
        clock.advance(45)
        assert post(server, "/v1/chat/completions", chat()).status_code == 200


def test_anthropic_rate_limit_headers_and_429(fake: FakeProviderServer) -> None:
    fake.set_behavior("c", ModelBehavior(rate_limit=1, tokens_per_minute=5000))
    ok = post(fake, "/v1/messages", anthropic_chat())
    assert ok.headers["anthropic-ratelimit-requests-limit"] == "1"
    assert ok.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert ok.headers["anthropic-ratelimit-tokens-limit"] == "5000"
    assert int(ok.headers["anthropic-ratelimit-tokens-remaining"]) < 5000
    limited = post(fake, "/v1/messages", anthropic_chat())
    assert limited.status_code == 429
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert float(limited.headers["retry-after"]) > 0


def test_tokens_per_minute_limit() -> None:
    clock = ManualClock()
    with FakeProviderServer({"m": ModelBehavior(tokens_per_minute=40)}, clock=clock) as server:
        assert post(server, "/v1/chat/completions", chat(text="x" * 60)).status_code == 200
        limited = post(server, "/v1/chat/completions", chat(text="x" * 60))
        assert limited.status_code == 429
        assert limited.json()["error"]["type"] == "tokens"
        clock.advance(61)
        assert post(server, "/v1/chat/completions", chat(text="x" * 60)).status_code == 200


# --- records -------------------------------------------------------------------------------------


async def test_max_concurrency_counts_overlapping_requests(fake: FakeProviderServer) -> None:
    fake.set_behavior("slow", ModelBehavior(latency_s=0.3))
    async with httpx.AsyncClient(headers=OPENAI_HEADERS, timeout=5) as client:
        url = fake.openai_base_url + "/chat/completions"
        responses = await asyncio.gather(
            *(client.post(url, json=chat("slow")) for _ in range(5)),
            client.post(url, json=chat("fast")),
        )
    assert all(r.status_code == 200 for r in responses)
    assert fake.max_concurrency("slow") == 5
    assert fake.max_concurrency() >= 5
    assert fake.max_concurrency("fast") == 1
    fake.reset()
    assert fake.max_concurrency("slow") == 0


def test_keys_are_masked_in_errors_and_records() -> None:
    with FakeProviderServer(valid_keys={"sk-good-0000000000000000"}) as server:
        wrong = "sk-wrong-secret-value-9999abcd"
        response = post(
            server, "/v1/chat/completions", chat(), headers={"Authorization": f"Bearer {wrong}"}
        )
        assert response.status_code == 401
        message = response.json()["error"]["message"]
        assert message.startswith("Incorrect API key provided: sk-...abcd.")
        assert wrong not in response.text
        record = server.requests[0]
        assert record.api_key_tail == "abcd"
        assert record.headers["AUTHORIZATION"] == "Bearer sk-...abcd"
        assert wrong not in repr(record)


@pytest.mark.parametrize(
    ("path", "headers", "status", "needle"),
    [
        ("/v1/chat/completions", {}, 401, "You didn't provide an API key"),
        ("/openai/v1/chat/completions", {}, 401, "Invalid API Key"),
        ("/api/v1/chat/completions", {}, 401, "No auth credentials found"),
        ("/v1/messages", {"anthropic-version": "2023-06-01"}, 401, "x-api-key header is required"),
        ("/v1/messages", {"x-api-key": KEY}, 400, "anthropic-version: header is required"),
    ],
)
def test_auth_failures_use_each_providers_body(
    fake: FakeProviderServer, path: str, headers: dict[str, str], status: int, needle: str
) -> None:
    response = post(fake, path, anthropic_chat(), headers=headers)
    assert response.status_code == status
    assert needle in response.text


def test_anthropic_accepts_bearer_auth_like_the_newest_sdk(fake: FakeProviderServer) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "anthropic-version": "2026-10-21"}
    assert post(fake, "/v1/messages", anthropic_chat(), headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/v1/chat/completions", {"model": "m"}, "Missing required parameter: 'messages'."),
        ("/v1/chat/completions", {"messages": []}, "you must provide a model parameter"),
        ("/v1/chat/completions", chat(usage={"include": True}), "Unrecognized request argument"),
        (
            "/v1/chat/completions",
            {"model": "m", "messages": [{"role": "tool", "tool_call_id": "x", "content": "1"}]},
            "messages with role 'tool' must be a response to a preceeding message",
        ),
        (
            "/v1/chat/completions",
            chat(response_format={"type": "json_object"}),
            "must contain the word 'json'",
        ),
        ("/v1/messages", chat("c"), "max_tokens: Field required"),
        (
            "/v1/messages",
            {
                "model": "c",
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]}
                ],
            },
            "unexpected `tool_use_id` found in `tool_result` blocks: t1",
        ),
    ],
)
def test_invalid_requests_get_400_with_real_wording(
    fake: FakeProviderServer, path: str, body: dict[str, Any], needle: str
) -> None:
    response = post(fake, path, body)
    assert response.status_code == 400
    assert needle in response.text


def test_openrouter_accepts_its_extensions(fake: FakeProviderServer) -> None:
    body = chat("a/b", usage={"include": True}, provider={"order": ["x"]})
    assert post(fake, "/api/v1/chat/completions", body).status_code == 200


def test_unknown_routes_and_model_list(fake: FakeProviderServer) -> None:
    missing = post(fake, "/v1/completions", chat())
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Invalid URL (POST /v1/completions)"
    with FakeProviderServer({"b": ModelBehavior(), "a": ModelBehavior()}) as server:
        listed = httpx.get(server.openai_base_url + "/models", headers=OPENAI_HEADERS).json()
        assert [m["id"] for m in listed["data"]] == ["a", "b"]
        claude_list = httpx.get(server.url + "/v1/models", headers=ANTHROPIC_HEADERS).json()
        assert claude_list["first_id"] == "a" and claude_list["data"][0]["type"] == "model"


# --- wire details the SDK tests do not see ------------------------------------------------------


def test_anthropic_stream_event_order(fake: FakeProviderServer) -> None:
    raw = post(fake, "/v1/messages", anthropic_chat(text="x y", stream=True)).text
    events = [line[len("event: ") :] for line in raw.split("\n") if line.startswith("event: ")]
    assert events == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_openai_tool_arguments_stream_in_several_fragments(fake: FakeProviderServer) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "unicode_customer",
            "parameters": {
                "type": "object",
                "properties": {"customer_name": {"type": "string"}},
            },
        },
    }
    body = chat(text="Create a customer named '你好啊集团' now", tools=[tool], stream=True)
    chunks = [json.loads(d) for d in sse_data(post(fake, "/v1/chat/completions", body).text)[:-1]]
    deltas = [c["choices"][0]["delta"].get("tool_calls") for c in chunks if c["choices"]]
    fragments = [d[0]["function"]["arguments"] for d in deltas if d]
    assert deltas[0][0]["id"] and deltas[0][0]["function"]["name"] == "unicode_customer"
    assert len([f for f in fragments if f]) >= 3
    assert json.loads("".join(fragments)) == {"customer_name": "你好啊集团"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_modes_and_text_options(fake: FakeProviderServer) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    fake.set_behavior("never", ModelBehavior(tool_mode="never", reply="fixed answer"))
    message = post(fake, "/v1/chat/completions", chat("never", tools=[tool])).json()
    assert message["choices"][0]["message"]["content"] == "fixed answer"
    fake.set_behavior("always", ModelBehavior(tool_mode="always"))
    after_tool = {
        "model": "always",
        "tools": [tool],
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": [_call("c1")]},
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ],
    }
    again = post(fake, "/v1/chat/completions", after_tool).json()
    assert again["choices"][0]["finish_reason"] == "tool_calls"
    after_tool["model"] = "auto"
    answered = post(fake, "/v1/chat/completions", after_tool).json()
    assert answered["choices"][0]["message"]["content"] == "The tool returned: done"
    fake.set_behavior(
        "echo", ModelBehavior(reply=lambda body: body["messages"][0]["content"][::-1])
    )
    reversed_text = post(fake, "/v1/chat/completions", chat("echo", "abc", stop=["a"])).json()
    assert reversed_text["choices"][0]["message"]["content"] == "cb"


def _call(call_id: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}


def test_chunk_size_and_max_tokens(fake: FakeProviderServer) -> None:
    fake.set_behavior("m", ModelBehavior(chunk_size=4))
    data = sse_data(post(fake, "/v1/chat/completions", chat(text="abcdefgh", stream=True)).text)
    pieces = [json.loads(d)["choices"][0]["delta"].get("content") for d in data[1:-2]]
    assert pieces == ["Echo", ": ab", "cdef", "gh"]
    cut = post(fake, "/v1/messages", anthropic_chat(text="z" * 100, max_tokens=2)).json()
    assert cut["stop_reason"] == "max_tokens"
    assert cut["usage"]["output_tokens"] == 2


def test_schema_synthesis_follows_refs_unions_and_the_prompt() -> None:
    schema = {
        "type": "object",
        "properties": {
            "person": {"$ref": "#/$defs/Person"},
            "mood": {"enum": ["happy", "sad"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "note": {"anyOf": [{"type": "null"}, {"type": "string"}]},
            "ok": {"type": "boolean"},
            "score": {"type": "number", "minimum": 10},
        },
        "$defs": {
            "Person": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            }
        },
    }
    value = synthesize(schema, "Meet 'Ada' aged (36)")
    assert value == {
        "person": {"name": "Ada", "age": 36},
        "mood": "happy",
        "tags": ["Ada"],
        "note": "Ada",
        "ok": True,
        "score": 36,
    }
    assert synthesize({"type": "object", "properties": {"x": {"type": "string"}}}) == {
        "x": "example"
    }
    assert synthesize({"properties": {"city": {"type": "string"}}}, "city: Paris.") == {
        "city": "Paris"
    }


# --- configuration and the CLI entry point --------------------------------------------------------


def test_from_config_builds_scripted_models() -> None:
    config = {"port": 0, "valid_keys": [KEY], "models": {"m": {"errors": [500]}}}
    with FakeProviderServer.from_config(config) as server:
        assert post(server, "/v1/chat/completions", chat()).status_code == 500
        assert post(server, "/v1/chat/completions", chat()).status_code == 200
    with pytest.raises(ValueError, match="unknown ModelBehavior field"):
        FakeProviderServer.from_config({"models": {"m": {"error": [500]}}})
    with pytest.raises(ValueError, match="unknown fake-server config key"):
        FakeProviderServer.from_config({"prot": 1})


async def test_async_context_manager(fake: FakeProviderServer) -> None:
    async with FakeProviderServer() as server, httpx.AsyncClient() as client:
        url = server.groq_base_url + "/chat/completions"
        response = await client.post(url, json=chat(), headers=OPENAI_HEADERS)
    assert response.json()["x_groq"]["id"].startswith("req_")
    with pytest.raises(httpx.ConnectError):
        httpx.post(server.openai_base_url + "/chat/completions", json=chat())


def test_serve_forever_prints_urls_and_stops_on_ctrl_c(tmp_path: Any) -> None:
    config = tmp_path / "fake.json"
    config.write_text(json.dumps({"models": {"m": {"reply": "from config"}}}))
    code = (
        "from llmrouter_integrations.testing.fake_server import serve_forever; "
        f"serve_forever({str(config)!r}, 0)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        url = first.rsplit(" ", 1)[-1].strip()
        assert first.startswith("Fake provider server listening on http://127.0.0.1:")
        reply = httpx.post(url + "/v1/chat/completions", json=chat(), headers=OPENAI_HEADERS)
        assert reply.json()["choices"][0]["message"]["content"] == "from config"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
