"""LangChain's own standard suites (langchain-tests) against ChatLLMRouter, offline.

Each suite runs twice: with an OpenAI-format deployment first in the fallback chain and
with an Anthropic-format one first, both served by FakeProviderServer on 127.0.0.1.

Every input capability the router carries is switched on: images (data and URL, also in
tool messages), PDFs (also in tool messages), Anthropic-native histories (tool_use,
tool_result, cache_control, signed thinking) and, with the OpenAI-format deployment first,
audio (Anthropic has no audio input, so that chain's profile does not claim it). The
suite's sample downloads (`httpx.get`) are served offline: a 1x1 PNG, a one-page PDF and
a short WAV, each a valid file of its kind.

Left off, and why (the suite then skips the test with its own message):

- video inputs: the router does not carry video.
- `test_stream_time`: a VCR benchmark that replays recorded real-provider traffic; this
  suite answers from the loopback fake instead of cassettes.
- `test_serdes` is an expected failure: see its reason; `test_init_from_env` runs.
"""

from __future__ import annotations

import base64
import io
import struct
import wave
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from langchain_core.load import dumps, loads
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_fakes import deployments
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from llmrouter_integrations.langchain import ChatLLMRouter
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

# Unit tests never connect; a fixed address keeps the serialisation snapshot stable.
_UNUSED_OPENAI = "http://127.0.0.1:9/v1"
_UNUSED_ANTHROPIC = "http://127.0.0.1:9"


def _pdf_one_page() -> bytes:
    """A minimal valid PDF (one empty page), with a correct cross-reference table."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 72 72] >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _wav_silence() -> bytes:
    """A valid 8 kHz mono 16-bit WAV holding 10 ms of silence."""
    samples = b"\x00\x00" * 80
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(samples)) + samples
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _sample_for(url: str) -> bytes:
    """What the suite's sample download of `url` would return, made here."""
    path = url.lower().split("?")[0]
    if path.endswith(".pdf"):
        return _pdf_one_page()
    if path.endswith((".wav", ".mp3", ".ogg")):
        return _wav_silence()
    return _png_1x1()


def _png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


class _UnitBase(ChatModelUnitTests):
    first: Literal["openai", "anthropic"] = "openai"

    @property
    def chat_model_class(self) -> type[ChatLLMRouter]:
        return ChatLLMRouter

    @property
    def chat_model_params(self) -> dict[str, Any]:
        chain = [
            {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "base_url": _UNUSED_OPENAI,
                "api_key": "sk-unit-1",
            },
            {
                "provider": "anthropic",
                "model": "claude-haiku-4-5",
                "base_url": _UNUSED_ANTHROPIC,
                "api_key": "sk-unit-2",
            },
        ]
        return {
            "deployments": chain if self.first == "openai" else chain[::-1],
            "strategy": "priority",
        }

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"LLMROUTER_API_KEY": "sk-from-env-0123"},
            self.chat_model_params,
            {"api_key": "sk-from-env-0123"},
        )

    @pytest.mark.xfail(
        reason=(
            "langchain-core 1.7 load(allowed_objects='all') admits only classes in its own "
            "serialisation mapping, so no third-party model can load here; dumpd matches the "
            "snapshot, and test_serialised_config_loads_back_without_keys loads it with "
            "allowed_objects=[ChatLLMRouter]"
        ),
        raises=ValueError,
        strict=True,
    )
    def test_serdes(self, model: Any, snapshot: Any) -> None:
        super().test_serdes(model, snapshot)


class TestUnitOpenAIFirst(_UnitBase):
    first = "openai"


class TestUnitAnthropicFirst(_UnitBase):
    first = "anthropic"


class _IntegrationBase(ChatModelIntegrationTests):
    first: Literal["openai", "anthropic"] = "openai"
    fake: FakeProviderServer

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _server(cls) -> Iterator[None]:
        with FakeProviderServer() as server:
            cls.fake = server
            yield

    @pytest.fixture(autouse=True)
    def _served_by_the_first_deployment(self) -> Iterator[None]:
        """Every request of a test reached the first deployment's wire format: the suite
        exercised that dialect and never passed thanks to a silent fallback."""
        self.fake.reset()
        yield
        expected = "/v1/chat/completions" if self.first == "openai" else "/v1/messages"
        assert {request.path for request in self.fake.requests} <= {expected}

    @pytest.fixture(autouse=True)
    def _offline_downloads(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # The multimodal tests download sample files with httpx.get; make them here.
        def get(url: str, **_: Any) -> httpx.Response:
            return httpx.Response(200, content=_sample_for(str(url)))

        monkeypatch.setattr(httpx, "get", get)

    @property
    def chat_model_class(self) -> type[ChatLLMRouter]:
        return ChatLLMRouter

    @property
    def chat_model_params(self) -> dict[str, Any]:
        chain = deployments(self.fake, self.first)
        for deployment in chain:
            if deployment["provider"] == "openai":
                # The router routes audio only to models that hear it; gpt-4o-mini does not
                # in the catalog, so this deployment says it does (the fake accepts audio).
                deployment["capabilities"] = {"audio": True}
        return {"deployments": chain, "strategy": "priority", "max_retries": 0}

    @property
    def model_override_value(self) -> str:
        return "gpt-4o" if self.first == "openai" else "claude-sonnet-4-5"

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_anthropic_inputs(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @property
    def supports_pdf_inputs(self) -> bool:
        return True

    @property
    def supports_pdf_tool_message(self) -> bool:
        return True

    @property
    def supports_audio_inputs(self) -> bool:
        return self.first == "openai"

    @property
    def supported_usage_metadata_details(self) -> dict[str, list[Any]]:
        details = ["cache_read_input", "cache_creation_input", "reasoning_output"]
        return {"invoke": details, "stream": details}

    def _with_usage(self, usage: dict[str, float], *, stream: bool) -> AIMessage:
        # A model name of its own, so the scripted usage touches no other test.
        name = "usage-details-model"
        self.fake.set_behavior(name, ModelBehavior(usage=usage))
        model = ChatLLMRouter(**self.chat_model_params)
        prompt = "Tell me a short story about a lighthouse keeper."
        if not stream:
            return model.invoke(prompt, model=name)
        merged: AIMessageChunk | None = None
        for chunk in model.stream(prompt, model=name):
            merged = chunk if merged is None else merged + chunk
        assert merged is not None
        return merged

    def invoke_with_cache_read_input(self, *, stream: bool = False) -> AIMessage:
        return self._with_usage({"input": 1500, "cached": 1024, "output": 30}, stream=stream)

    def invoke_with_cache_creation_input(self, *, stream: bool = False) -> AIMessage:
        return self._with_usage({"input": 1500, "cache_write": 1200, "output": 30}, stream=stream)

    def invoke_with_reasoning_output(self, *, stream: bool = False) -> AIMessage:
        return self._with_usage({"input": 40, "output": 300, "reasoning": 256}, stream=stream)


class TestIntegrationOpenAIFirst(_IntegrationBase):
    first = "openai"


class TestIntegrationAnthropicFirst(_IntegrationBase):
    first = "anthropic"


def test_download_stubs_are_real_files() -> None:
    assert base64.b64encode(_png_1x1()).startswith(b"iVBORw0KGgo")
    pdf = _pdf_one_page()
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    xref = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf[xref:].startswith(b"xref")
    with wave.open(io.BytesIO(_wav_silence())) as audio:
        assert (audio.getframerate(), audio.getnframes()) == (8000, 80)
    assert _sample_for("https://x/dummy.pdf") == pdf


def test_serialised_config_loads_back_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    model = ChatLLMRouter(
        strategy="priority",
        deployments=[
            {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "base_url": _UNUSED_OPENAI,
                "api_key": "sk-secret-a",
            },
            {
                "provider": "anthropic",
                "model": "claude-haiku-4-5",
                "base_url": _UNUSED_ANTHROPIC,
                "headers": {"x-api-key": "sk-secret-b", "x-team": "search"},
            },
        ],
        api_key="sk-secret-c",
        temperature=0.2,
        max_tokens=64,
    )
    text = dumps(model)
    assert "sk-secret" not in text and "sk-secret" not in repr(model)
    assert "sk-secret" not in str(model._identifying_params)
    monkeypatch.setenv("LLMROUTER_API_KEY", "sk-from-env-0123")
    loaded = loads(
        text,
        allowed_objects=[ChatLLMRouter],
        valid_namespaces=["llmrouter_integrations"],
        secrets_from_env=True,
    )
    assert isinstance(loaded, ChatLLMRouter)
    assert loaded.asdict() == model.asdict()
    assert loaded.llm_router.deployments[1].headers == {"x-team": "search"}
    assert loaded.api_key is not None and loaded.api_key.get_secret_value() == "sk-from-env-0123"


@pytest.mark.parametrize("setting", ["cache", "ledger", "state"])
def test_store_passwords_stay_out_of_repr_and_serialised_config(
    setting: str, tmp_path: Path
) -> None:
    # A Redis URL carries its password; LangChain writes dumps() to disk and the llm
    # string into its own cache's rows, so neither may hold it.
    ledger = f"sqlite:///{tmp_path / 'costs.db'}"
    url = ledger if setting == "ledger" else "redis://:Hunter2-pw@127.0.0.1:1/0"
    model = ChatLLMRouter(
        deployments=["openai/gpt-4o-mini"], api_key="sk-test-0123456789", **{setting: url}
    )
    for text in (repr(model), str(model), dumps(model), model._get_llm_string()):
        assert "Hunter2-pw" not in text
    if setting == "ledger":  # a plain path is configuration, kept for loading back
        assert ledger in dumps(model)
