"""Documents and audio through the Router: the right wire blocks, routing by capability,
a clear error when no deployment takes a part, estimates that see a big PDF."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from llmrouter_integrations import Deployment, Message, NoDeploymentAvailableError, Router
from llmrouter_integrations.costs.tokens import estimate_input_tokens
from llmrouter_integrations.testing import FakeProviderServer
from llmrouter_integrations.types import ChatRequest, ContentPart

KEY = "sk-test-0123456789abcdef"
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n").decode()
WAV = base64.b64encode(b"RIFF\x24\x00\x00\x00WAVEfmt ").decode()


@pytest.fixture()
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


def claude(fake: FakeProviderServer) -> Deployment:
    return Deployment(
        "anthropic", "claude-sonnet-4-5", api_key=KEY, base_url=fake.anthropic_base_url
    )


def gpt(fake: FakeProviderServer, model: str = "gpt-4o", **kw: Any) -> Deployment:
    return Deployment("openai", model, api_key=KEY, base_url=fake.openai_base_url, **kw)


def ask(*parts: ContentPart) -> list[Message]:
    return [Message("user", [*parts, ContentPart("text", text="What is in it?")])]


def pdf(**kw: Any) -> ContentPart:
    return ContentPart("file", data=PDF, media_type="application/pdf", **kw)


async def test_pdf_reaches_each_provider_in_its_own_block(fake: FakeProviderServer) -> None:
    async with Router([claude(fake), gpt(fake)], strategy="priority") as router:
        await router.achat(ask(pdf(filename="report.pdf")))
        await router.achat(ask(pdf(filename="report.pdf")), deployments=["openai/gpt-4o"])
    sent = fake.requests_for("claude-sonnet-4-5")[-1].body["messages"][0]["content"][0]
    assert sent == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
        "title": "report.pdf",
    }
    part = fake.requests_for("gpt-4o")[-1].body["messages"][0]["content"][0]
    assert part == {
        "type": "file",
        "file": {"filename": "report.pdf", "file_data": f"data:application/pdf;base64,{PDF}"},
    }


async def test_url_and_text_documents(fake: FakeProviderServer) -> None:
    async with Router([claude(fake)]) as router:
        await router.achat(ask(ContentPart("file", url="https://example.com/a.pdf")))
        await router.achat(ask(ContentPart("file", text="plain notes", media_type="text/plain")))
    bodies = [r.body["messages"][0]["content"][0] for r in fake.requests_for("claude-sonnet-4-5")]
    assert bodies[0]["source"] == {"type": "url", "url": "https://example.com/a.pdf"}
    assert bodies[1]["source"] == {
        "type": "text",
        "media_type": "text/plain",
        "data": "plain notes",
    }


async def test_audio_goes_only_where_it_is_heard(fake: FakeProviderServer) -> None:
    audio = ContentPart("audio", data=WAV, media_type="audio/wav")
    router = Router([claude(fake), gpt(fake, "gpt-4o-audio-preview")], strategy="priority")
    async with router:
        response = await router.achat(ask(audio))
    assert response.deployment == "openai/gpt-4o-audio-preview"
    assert fake.request_count("claude-sonnet-4-5") == 0
    part = fake.requests_for("gpt-4o-audio-preview")[-1].body["messages"][0]["content"][0]
    assert part == {"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}}


async def test_a_part_no_deployment_takes_is_named(fake: FakeProviderServer) -> None:
    audio = ContentPart("audio", data=WAV, media_type="audio/mpeg")
    async with Router([claude(fake), gpt(fake, "gpt-4o-mini")]) as router:
        with pytest.raises(NoDeploymentAvailableError, match="does not support audio"):
            await router.achat(ask(audio))
    assert fake.request_count() == 0


async def test_capabilities_override_the_catalog(fake: FakeProviderServer) -> None:
    audio = ContentPart("audio", data=WAV, media_type="audio/mpeg")
    deployment = gpt(fake, "my-audio-model", capabilities={"audio": True})
    async with Router([deployment]) as router:
        await router.achat(ask(audio))
    part = fake.requests_for("my-audio-model")[-1].body["messages"][0]["content"][0]
    assert part["input_audio"]["format"] == "mp3"


def test_a_big_pdf_counts_in_estimates() -> None:
    big = ContentPart("file", data="A" * 13_000_000, media_type="application/pdf")  # ~10 MB
    request = ChatRequest(messages=ask(big))
    assert estimate_input_tokens(request) > 500_000


async def test_a_big_pdf_is_kept_from_small_context_windows(fake: FakeProviderServer) -> None:
    big = ContentPart("file", data=PDF + "A" * 4_000_000, media_type="application/pdf")
    small = gpt(fake, context_window=128_000)
    async with Router([small]) as router:
        with pytest.raises(NoDeploymentAvailableError, match="context window is 128,000"):
            await router.achat(ask(big))
    assert fake.request_count() == 0
