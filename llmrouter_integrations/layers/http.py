"""The innermost layer: one deployment answered over HTTP by its endpoint's dialect.

It turns a `ChatRequest` into bytes with the dialect, sends them through the shared
transport, and turns the reply (whole, or as server-sent events) back into a
`ChatResponse` or `ChatChunk`s with usage, cost and timing filled in.

    >>> backend = DeploymentBackend(deployment, endpoint=get_endpoint("openai"),
    ...                             transport=AiohttpTransport(),
    ...                             base_url="https://api.openai.com/v1")
    >>> (await backend.chat(request)).text
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from .._secrets import (
    mask_url,
    scrub_error,
    secret_forms,
    split_url_credentials,
    url_secrets,
)
from ..core.clock import SYSTEM_CLOCK, Clock
from ..costs.tokens import estimate_input_tokens, estimate_text_tokens
from ..errors import (
    ConfigurationError,
    ProviderError,
    ProviderTimeoutError,
    ResponseDecodeError,
)
from ..providers.base import PARSER_ERRORS
from ..transport.base import HTTPRequest, Transport
from ..transport.sse import SSEDecoder
from ..types import ChatChunk, ChatRequest, ChatResponse, CostDetail, Deployment, Usage

if TYPE_CHECKING:
    from ..costs.pricing import Pricer
    from ..providers.base import Dialect, RateLimitInfo
    from ..providers.endpoints import Endpoint

__all__ = ["DEFAULT_CONNECT_TIMEOUT_S", "DEFAULT_TIMEOUT_S", "DeploymentBackend"]

# The official SDKs' defaults: 10 minutes per attempt, 5 seconds to connect.
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0
_EXCERPT_CHARS = 200

# Compact separators: smaller bodies, and json's C encoder is as fast as it gets
# without a new dependency.
_standard_encode = json.JSONEncoder(separators=(",", ":")).encode


def _make_fast_encode() -> Callable[[Any], str] | None:
    """json's C encoder made once, not per call as `JSONEncoder.encode` does (half the time).

    It skips the circular-reference check, so anything it cannot encode is handed to the
    standard encoder, which raises the usual error. None when this Python has no C encoder.
    """
    from json import encoder

    make = getattr(encoder, "c_make_encoder", None)
    escape = getattr(encoder, "c_encode_basestring_ascii", None)
    if make is None or escape is None:
        return None
    try:
        iterencode = make(
            None, json.JSONEncoder().default, escape, None, ":", ",", False, False, True
        )
        sample = {"a": [1, 2.5, None, True, "é\n"], "b": {"c": -0.0}}
        if "".join(iterencode(sample, 0)) != _standard_encode(sample):
            return None
    except Exception:  # another Python's private signature: keep the standard encoder
        return None

    def encode(value: Any) -> str:
        try:
            return "".join(iterencode(value, 0))
        except (TypeError, ValueError, RecursionError):
            return _standard_encode(value)  # raises the standard, readable error

    return encode


_encode_json: Callable[[Any], str] = _make_fast_encode() or _standard_encode

# json's C scanner, called directly: `json.loads(bytes)` adds an encoding sniff and two
# regex passes in Python around the same scan (a third of its time on a typical reply).
_scan_json: Callable[[str, int], tuple[Any, int]] = vars(json.JSONDecoder())["scan_once"]
_JSON_SPACE = " \t\n\r"


def _parse_json(body: bytes) -> Any:
    """`json.loads(body)`, faster for the usual UTF-8 reply; anything unusual (another
    encoding, a BOM, leading space, an error) goes through `json.loads` itself."""
    try:
        text = body.decode()
        value, end = _scan_json(text, 0)
    except (UnicodeDecodeError, StopIteration, ValueError):
        return json.loads(body)
    if end != len(text) and text[end:].strip(_JSON_SPACE):
        return json.loads(body)  # trailing garbage: raise json's own error
    return value


class DeploymentBackend:
    """A `ChatBackend` for one `Deployment`, speaking its endpoint's wire format over HTTP.

    `deployment.timeout` bounds one attempt (the whole exchange; for a stream, the wait
    for headers and for each chunk) and `request.deadline`, set by the router, bounds
    every attempt of the request. `aclose()` leaves the shared transport open: the router
    owns it.

    >>> backend = DeploymentBackend(Deployment(provider="openai", model="gpt-4o-mini"),
    ...                             endpoint=get_endpoint("openai"), transport=transport,
    ...                             base_url="https://api.openai.com/v1", pricer=Pricer())
    """

    def __init__(
        self,
        deployment: Deployment,
        *,
        endpoint: Endpoint,
        transport: Transport,
        base_url: str,
        clock: Clock = SYSTEM_CLOCK,
        pricer: Pricer | None = None,
        on_rate_limits: Callable[[str, RateLimitInfo], None] | None = None,
    ) -> None:
        from ..providers.endpoints import get_dialect

        self.deployment = deployment
        self._name = deployment.key  # the name the router's layers know it by
        self.endpoint = endpoint
        self.dialect: Dialect = get_dialect(endpoint.dialect)
        _check_url(base_url, self._name)
        url, basic_auth = split_url_credentials(base_url)
        self.url = _endpoint_url(url, self.dialect.path)
        self._transport = transport
        self._clock = clock
        self._pricer = pricer
        self._on_rate_limits = on_rate_limits
        self._timeout = deployment.timeout if deployment.timeout is not None else DEFAULT_TIMEOUT_S
        self._connect_timeout = min(DEFAULT_CONNECT_TIMEOUT_S, self._timeout)
        # Built once: the same headers go with every call (the key is read only here).
        api_key = deployment.api_key
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        headers = self.dialect.build_headers(key, endpoint)
        headers.update(deployment.headers)
        if basic_auth is not None:
            if any(header.lower() == "authorization" for header in headers):
                raise ConfigurationError(
                    f"deployment {self._name!r}: base_url holds user:password credentials but "
                    "the Authorization header already carries the API key; put the proxy's "
                    "credentials in headers= under another name, or drop the key"
                )
            headers["Authorization"] = basic_auth
        self._headers = headers
        # Providers sometimes echo the key in an error; the dialect redacts known key shapes,
        # and every error leaving this layer is scrubbed of this exact key and of the URL's
        # credentials (any length, any shape, in their usual encodings), chain included.
        self._secret_forms = secret_forms(key, *url_secrets(base_url))

    def __repr__(self) -> str:
        return f"DeploymentBackend({self.deployment.key!r}, url={mask_url(self.url)!r})"

    async def aclose(self) -> None:
        """Nothing of its own to close; the transport belongs to the router."""

    # -- one whole answer -------------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Send the request and return the provider's whole answer."""
        model = request.model or self.deployment.model
        clock = self._clock
        try:
            http_request = self._http_request(request, model, stream=False)
            started = clock.now()
            response = await self._transport.send(http_request)
            latency = clock.now() - started
            self._report_rate_limits(request, response.headers)
            if response.status_code >= 400:
                raise self.dialect.parse_error(
                    response.status_code, response.body, response.headers
                )
            try:
                data = _parse_json(response.body)
            except (ValueError, RecursionError):  # RecursionError: nesting past the limit
                raise _not_json(response.body, response.headers) from None
            try:
                parsed = self.dialect.parse_response(data)
            except ProviderError:
                raise
            except PARSER_ERRORS as exc:
                raise _unreadable(exc) from exc
        except ProviderError as error:
            self._tag(error, model)
            raise
        usage = parsed.usage
        if usage is None:
            # Some OpenAI-compatible servers omit usage: estimate, never report a free call.
            input_tokens = estimate_input_tokens(request)
            output_tokens = estimate_text_tokens(parsed.message.text)
            usage = Usage(input_tokens, output_tokens, input_tokens + output_tokens, estimated=True)
            if isinstance(data, dict):
                data = {**data, "usage_estimated": True}
        served = parsed.model or model
        detail = self._cost(usage, served, parsed.provider_cost_usd)
        return ChatResponse(
            message=parsed.message,
            finish_reason=parsed.finish_reason,
            usage=usage,
            cost=None if detail is None else float(detail.total),
            cost_detail=detail,
            provider=self.endpoint.name,
            model=served,
            deployment=self._name,
            latency_s=latency,
            raw=data,
            id=parsed.id,
        )

    # -- a stream of chunks -----------------------------------------------------------------

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Stream the answer: content chunks, then one final chunk with usage and cost.

        A stream that breaks (connection lost, bad event, no end marker) raises; it never
        ends as a shorter answer.
        """
        return self._stream(request)

    async def _stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        model = request.model or self.deployment.model
        clock = self._clock
        deployment_name = self.deployment.key
        deadline = request.deadline
        try:
            http_request = self._http_request(request, model, stream=True)
            state = self.dialect.new_stream_state(model=model)
            decoder = SSEDecoder()
            started = clock.now()
            ttft: float | None = None
            produced: list[str] = []  # only to estimate usage if the provider sends none
            async with self._transport.stream(http_request) as response:
                self._report_rate_limits(request, response.headers)
                if response.status_code >= 400:
                    body = await response.aread()
                    raise self.dialect.parse_error(response.status_code, body, response.headers)
                byte_stream = response.aiter_bytes()
                if deadline is not None:
                    # Each wait for bytes gets only what is left of the request's deadline,
                    # so a stream that stalls mid-way cannot outlive `timeout=`.
                    byte_stream = _until_deadline(byte_stream, deadline, clock)
                async for data in byte_stream:
                    for event in decoder.feed(data):
                        for chunk in _guarded(state.feed, event):
                            if ttft is None and chunk.has_content:
                                ttft = clock.now() - started
                            _remember_output(chunk, produced)
                            chunk.deployment = deployment_name
                            yield chunk
                    if deadline is not None and clock.now() >= deadline:
                        raise ProviderTimeoutError("the request's deadline passed mid-stream")
                for event in decoder.flush():
                    for chunk in _guarded(state.feed, event):
                        if ttft is None and chunk.has_content:
                            ttft = clock.now() - started
                        _remember_output(chunk, produced)
                        chunk.deployment = deployment_name
                        yield chunk
                if not state.done:
                    _raise_if_not_event_stream(response.headers)
                final = _guarded(state.finish)
        except ProviderError as error:
            self._tag(error, model)
            raise
        provider_cost = getattr(state, "provider_cost_usd", None)  # OpenRouter's usage.cost
        yield self._finish(
            final, request, model, clock.now() - started, ttft, produced, provider_cost
        )

    def _finish(
        self,
        final: ChatChunk,
        request: ChatRequest,
        model: str,
        latency: float,
        ttft: float | None,
        produced: list[str],
        provider_cost: Any = None,
    ) -> ChatChunk:
        final.is_final = True
        final.provider = self.endpoint.name
        final.model = final.model or model
        final.deployment = self.deployment.key
        final.latency_s = latency
        final.ttft_s = ttft
        if final.usage is None:
            # The provider sent no usage (an OpenAI-compatible server that ignores
            # stream_options): estimate rather than report a free call.
            input_tokens = estimate_input_tokens(request)
            output_tokens = estimate_text_tokens("".join(produced))
            final.usage = Usage(
                input_tokens, output_tokens, input_tokens + output_tokens, estimated=True
            )
            final.raw = (
                {**final.raw, "usage_estimated": True}
                if isinstance(final.raw, dict)
                else {"usage_estimated": True}
            )
        detail = self._cost(final.usage, final.model, provider_cost)
        final.cost_detail = detail
        final.cost = float(detail.total) if detail is not None else None
        return final

    # -- shared pieces ----------------------------------------------------------------------

    def _http_request(self, request: ChatRequest, model: str, *, stream: bool) -> HTTPRequest:
        timeout = self._timeout
        if request.timeout is not None and request.timeout < timeout:
            timeout = request.timeout
        if request.deadline is not None:
            remaining = request.deadline - self._clock.now()
            if remaining <= 0:
                raise ProviderTimeoutError("the request's deadline passed before this attempt")
            if remaining < timeout:
                timeout = remaining
        connect = self._connect_timeout if self._connect_timeout < timeout else timeout
        body = _encode_json(
            self.dialect.build_body(request, model=model, stream=stream, endpoint=self.endpoint)
        ).encode()
        return HTTPRequest(
            "POST",
            self.url,
            self._headers,
            body,
            connect_timeout=connect,
            # A whole answer is bounded as one; a stream per wait, with the deadline on top.
            read_timeout=timeout if stream else None,
            total_timeout=timeout,
        )

    def _cost(self, usage: Usage, served_model: str, provider_cost: Any) -> CostDetail | None:
        if self._pricer is None:
            return None
        endpoint = self.endpoint
        return self._pricer.cost(
            self.deployment,
            usage,
            prices_provider=endpoint.prices_provider,
            local=endpoint.local,
            served_model=served_model,
            provider_cost=provider_cost,
        )

    def _report_rate_limits(self, request: ChatRequest, headers: Mapping[str, str]) -> None:
        """Hand the provider's rate-limit headers to the limiter holding this call's permit
        (through the request's `CallAdmission`), else to `on_rate_limits`."""
        admission = request.admission
        if admission is None or admission.limits is None:
            if self._on_rate_limits is None:
                return
            admission = None
        info = self.dialect.parse_rate_limits(headers)
        if info.empty:
            return
        if admission is not None:
            admission.report_rate_limits(self._name, info)
        elif self._on_rate_limits is not None:
            self._on_rate_limits(self._name, info)

    def _tag(self, error: ProviderError, model: str) -> None:
        """Say where an error came from, without overwriting what the dialect knew."""
        if error.provider is None:
            error.provider = self.endpoint.name
        if error.model is None:
            error.model = model
        if error.deployment is None:
            error.deployment = self.deployment.key
        scrub_error(error, self._secret_forms)


def _guarded(function: Callable[..., Any], *args: Any) -> Any:
    """Call a dialect parser; a parser tripping over the reply is a decode error, not a crash."""
    try:
        return function(*args)
    except ProviderError:
        raise
    except PARSER_ERRORS as exc:
        raise _unreadable(exc) from exc


def _unreadable(exc: BaseException) -> ResponseDecodeError:
    return ResponseDecodeError(
        f"could not read the provider's reply ({type(exc).__name__}: {_excerpt(str(exc))})"
    )


async def _until_deadline(
    chunks: AsyncIterator[bytes], deadline: float, clock: Clock
) -> AsyncIterator[bytes]:
    iterator = aiter(chunks)
    while True:
        remaining = deadline - clock.now()
        if remaining <= 0:
            raise ProviderTimeoutError("the request's deadline passed mid-stream")
        try:
            data = await asyncio.wait_for(anext(iterator), remaining)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ProviderTimeoutError(
                "the request's deadline passed while waiting for the stream"
            ) from None
        yield data


def _not_json(body: bytes, headers: Mapping[str, str]) -> ResponseDecodeError:
    kind = headers.get("content-type", "no content-type")
    return ResponseDecodeError(
        f"expected JSON, got {kind}: {_excerpt(body.decode('utf-8', 'replace'))!r}"
    )


def _raise_if_not_event_stream(headers: Mapping[str, str]) -> None:
    kind = headers.get("content-type", "")
    if kind and "event-stream" not in kind:
        raise ResponseDecodeError(f"expected an event stream, got {kind}")


def _remember_output(chunk: ChatChunk, produced: list[str]) -> None:
    if chunk.text:
        produced.append(chunk.text)
    if chunk.reasoning:
        produced.append(chunk.reasoning)
    for delta in chunk.tool_call_deltas:
        produced.append(delta.arguments)
        if delta.name:
            produced.append(delta.name)


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 3] + "..."


def _endpoint_url(base_url: str, path: str) -> str:
    """The dialect's path appended to the base URL's path, before any query it has."""
    url, question, query = base_url.partition("?")
    return url.rstrip("/") + path + question + query


def _check_url(url: str, name: str) -> None:
    """Refuse at construction a base URL no HTTP library can send to (an unescaped `#`, `/`
    or `?` in a password makes the rest of it a port); say so without showing the URL's
    credentials, not even the fragment a parser took for a port."""
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 (it raises for a port that is not a number)
    except ValueError:
        valid = False
    if not valid:
        raise ConfigurationError(
            f"deployment {name!r}: base_url {mask_url(url)!r} is not an http(s) URL with a "
            "host and a numeric port; percent-encode a password's reserved characters "
            "(# as %23, / as %2F, ? as %3F, @ as %40)"
        )
