"""A real HTTP server on 127.0.0.1 that answers like OpenAI, Anthropic, Groq and OpenRouter.

    >>> with FakeProviderServer({"gpt-4o-mini": ModelBehavior(errors=[429])}) as fake:
    ...     client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test")
    ...     client.chat.completions.create(model="gpt-4o-mini", messages=[...])  # 429, retried
    ...     fake.request_count("gpt-4o-mini")
    2

Routes: POST /v1/chat/completions (OpenAI), /openai/v1/chat/completions (Groq),
/api/v1/chat/completions (OpenRouter), /v1/messages (Anthropic), GET /v1/models.
The server runs on its own thread and event loop, so sync code and async tests can both
use it and its latency is its own. Replies are deterministic (see `_fake_replies`).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Collection, Mapping
from typing import Any

from aiohttp import web

from ._fake_behavior import (
    ModelBehavior,
    NowClock,
    RateLimitWindow,
    RecordedRequest,
    key_tail,
    masked_headers,
    masked_query,
)
from ._fake_errors import (
    HTML_502,
    Problem,
    context_problem,
    error_body,
    error_headers,
    null_content_problem,
    rate_limit_headers,
    rate_limited_problem,
    request_too_large_problem,
    retry_headers,
    unknown_model_problem,
    unparseable_problem,
)
from ._fake_prompt_cache import PromptCache
from ._fake_replies import Reply, decide_reply, parse_anthropic, parse_openai
from ._fake_responses import hang, json_response, send_reply
from ._fake_runtime import LoopbackServer
from ._fake_thinking import add_reasoning
from ._fake_validate import (
    auth_problem,
    extract_key,
    model_problem,
    validate_anthropic,
    validate_openai,
)
from ._fake_wire import (
    Flavor,
    model_list,
)

__all__ = ["FakeProviderServer", "ModelBehavior", "RecordedRequest", "serve_forever"]

_CHAT_ROUTES: dict[str, Flavor] = {
    "/v1/chat/completions": "openai",
    "/openai/v1/chat/completions": "groq",
    "/api/v1/chat/completions": "openrouter",
    "/v1/messages": "anthropic",
}
_MODEL_ROUTES: dict[str, Flavor] = {
    "/v1/models": "openai",
    "/openai/v1/models": "groq",
    "/api/v1/models": "openrouter",
}
_DEFAULT = ModelBehavior()


class _MonotonicClock:
    def now(self) -> float:
        return time.monotonic()


class FakeProviderServer(LoopbackServer):
    """Loopback fake of four LLM providers, scripted per model, recording every request.

        >>> async with FakeProviderServer(valid_keys={"sk-test-0123456789"}) as fake:
        ...     client = anthropic.AsyncAnthropic(base_url=fake.anthropic_base_url, api_key=...)
        ...     fake.update_behavior("claude-haiku-4-5", permanent_error=529)

    `strict_models=True` answers 404 for models not in `models`; otherwise they get the
    default behaviour. `clock` drives rate-limit windows (latency sleeps stay real).
    `record_limit` keeps only that many recent request records (for long runs and
    benchmarks); by default every request is kept.
    """

    def __init__(
        self,
        models: Mapping[str, ModelBehavior] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        valid_keys: Collection[str] | None = None,
        strict_models: bool = False,
        clock: NowClock | None = None,
        record_limit: int | None = None,
    ) -> None:
        super().__init__(host=host, port=port)
        self.strict_models = strict_models
        self._valid_keys = frozenset(valid_keys) if valid_keys is not None else None
        self._clock: NowClock = clock or _MonotonicClock()
        self._lock = threading.Lock()
        self._behaviors = {name: b.copy() for name, b in (models or {}).items()}
        self._requests: deque[RecordedRequest] = deque(maxlen=record_limit)
        self._error_cursor: dict[str, int] = {}
        self._windows: dict[str, RateLimitWindow] = {}
        self._in_flight: dict[str | None, int] = {}
        self._max_in_flight: dict[str | None, int] = {}
        self._counts: dict[str | None, int] = {}
        self._prompt_cache = PromptCache()
        self._seq = 0

    # --- addresses ---------------------------------------------------------------------------

    # Each follows its official SDK's convention: OpenAI-style URLs end in /v1, Anthropic's not.

    @property
    def openai_base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, for `openai.OpenAI(base_url=...)`."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """`http://127.0.0.1:PORT`, for `anthropic.Anthropic(base_url=...)`."""
        return self.url

    @property
    def groq_base_url(self) -> str:
        """`http://127.0.0.1:PORT/openai/v1`, Groq's OpenAI-compatible path."""
        return self.url + "/openai/v1"

    @property
    def openrouter_base_url(self) -> str:
        """`http://127.0.0.1:PORT/api/v1`, OpenRouter's path."""
        return self.url + "/api/v1"

    # --- scripting and inspection --------------------------------------------------------------

    def set_behavior(self, model: str, behavior: ModelBehavior) -> None:
        """Replace a model's script (its scripted-error position starts over)."""
        with self._lock:
            self._behaviors[model] = behavior.copy()
            self._error_cursor.pop(model, None)

    def update_behavior(self, model: str, **fields: Any) -> None:
        """Change some fields of a model's script: `fake.update_behavior("m", latency_s=0.2)`."""
        with self._lock:
            current = self._behaviors.get(model, _DEFAULT)
            self._behaviors[model] = current.copy(**fields)
            if "errors" in fields:
                self._error_cursor.pop(model, None)

    def behavior(self, model: str) -> ModelBehavior:
        """The script in force for `model` (a copy)."""
        with self._lock:
            return self._behaviors.get(model, _DEFAULT).copy()

    def reset(self) -> None:
        """Forget recorded requests, scripted-error positions, rate windows, peak counts and
        cached prompt prefixes."""
        with self._lock:
            self._prompt_cache.clear()
            self._requests.clear()
            self._counts.clear()
            self._error_cursor.clear()
            self._windows.clear()
            self._max_in_flight = dict(self._in_flight)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a snapshot list)."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, model: str) -> list[RecordedRequest]:
        """The recorded requests that named `model`, oldest first."""
        with self._lock:
            return [r for r in self._requests if r.model == model]

    def request_count(self, model: str | None = None) -> int:
        """Chat requests received (for `model`, or in all), counted even past `record_limit`."""
        with self._lock:
            return self._counts.get(model, 0)

    def max_concurrency(self, model: str | None = None) -> int:
        """Most requests (for `model`, or in all) that were in progress at the same time."""
        with self._lock:
            return self._max_in_flight.get(model, 0)

    # --- request handling ------------------------------------------------------------------------

    def _enter(self, key: str | None) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            count = self._in_flight.get(key, 0) + 1
            self._in_flight[key] = count
            self._max_in_flight[key] = max(count, self._max_in_flight.get(key, 0))

    def _leave(self, key: str | None) -> None:
        with self._lock:
            self._in_flight[key] = self._in_flight.get(key, 1) - 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        flavor = _CHAT_ROUTES.get(request.path) if request.method == "POST" else None
        if flavor is None:
            return await self._other_route(request)
        headers = masked_headers(request.headers)
        with self._lock:
            self._seq += 1
            seq = self._seq
            record = RecordedRequest(
                request.path, request.method, headers, None, None, False, time.monotonic(), flavor
            )
            record.query = masked_query(request.query)
            self._requests.append(record)
        self._enter(None)
        model_key: str | None = None
        try:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            if isinstance(body, dict):
                record.body = body
                record.model = body.get("model") if isinstance(body.get("model"), str) else None
                record.stream = bool(body.get("stream"))
                model_key = record.model
                if model_key is not None:
                    self._enter(model_key)
            response = await self._serve(request, flavor, record, body, seq)
            record.status = response.status
            if record.outcome == "pending":
                record.outcome = "ok" if response.status < 400 else "error"
            return response
        finally:
            record.ended_at = time.monotonic()
            self._leave(None)
            if model_key is not None:
                self._leave(model_key)

    async def _serve(
        self, request: web.Request, flavor: Flavor, record: RecordedRequest, body: Any, seq: int
    ) -> web.StreamResponse:
        request_id = f"req_fake{seq:018d}"
        headers = {("request-id" if flavor == "anthropic" else "x-request-id"): request_id}

        def refuse(problem: Problem, extra: Mapping[str, str] | None = None) -> web.Response:
            payload = error_body(
                flavor,
                problem.status,
                problem.message,
                type_=problem.type_,
                code=problem.code,
                param=problem.param,
                request_id=request_id,
            )
            return json_response(payload, problem.status, {**headers, **(extra or {})})

        problem = self._check(request, flavor, record, body)
        if problem is not None or not isinstance(body, dict):
            return refuse(problem or unparseable_problem(flavor))
        model = str(body["model"])
        with self._lock:
            known = model in self._behaviors
            behavior = self._behaviors.get(model, _DEFAULT)
        if self.strict_models and not known:
            return refuse(unknown_model_problem(flavor, model))
        problem = model_problem(flavor, body, model, behavior)
        if problem is not None:
            return refuse(problem)
        await self.sleep(behavior.latency_s)
        scripted_headers = error_headers(behavior)
        status = self._scripted_status(model, behavior)
        with self._lock:
            window = self._windows.setdefault(model, RateLimitWindow())
            now = self._clock.now()
            headers.update(rate_limit_headers(flavor, window.snapshot(behavior, now)))
        if behavior.null_content_error is not None and flavor != "anthropic":
            problem = null_content_problem(behavior.null_content_error, body)
            if problem is not None:
                return refuse(problem)
        if behavior.html_502:
            return web.Response(
                status=502, text=HTML_502, content_type="text/html", headers=scripted_headers
            )
        if status is not None:
            return refuse(Problem(status, behavior.error_message), scripted_headers)
        view = parse_anthropic(body) if flavor == "anthropic" else parse_openai(body)
        prefix = f"toolu_fake{seq:012d}x" if flavor == "anthropic" else f"call_fake{seq:012d}x"
        reply = decide_reply(view, behavior, body, id_prefix=prefix)
        add_reasoning(reply, flavor, model, body, behavior, view)
        with self._lock:
            cached = self._prompt_cache.account(flavor, model, body, behavior, self._clock.now())
        reply.usage.set_cache(*cached, overrides=behavior.usage)
        if behavior.context_window is not None and reply.usage.input > behavior.context_window:
            return refuse(context_problem(flavor, reply.usage.input, behavior.context_window))
        tpm = behavior.tokens_per_minute
        requested = reply.usage.input + (view.max_tokens or 0)
        if tpm is not None and flavor != "anthropic" and requested > tpm:
            # OpenAI and Groq count the prompt plus max_tokens and refuse what no wait fits.
            return refuse(request_too_large_problem(flavor, model, tpm, requested))
        limited = self._admit(flavor, model, behavior, window, now, reply, headers)
        if limited is not None:
            problem, wait = limited
            return refuse(problem, {**retry_headers(wait), **scripted_headers})
        if behavior.hang:
            return await hang(self, request, record)
        served = behavior.served_model or model
        return await send_reply(
            self, request, flavor, record, reply, behavior, served, seq, headers, request_id
        )

    def _check(
        self, request: web.Request, flavor: Flavor, record: RecordedRequest, body: Any
    ) -> Problem | None:
        """Auth first, then the API version header, then the body, as the real APIs order it."""
        key = extract_key(flavor, request.headers)
        record.api_key_tail = key_tail(key) if key else None
        problem = auth_problem(flavor, key, self._valid_keys)
        if problem is not None:
            return problem
        if flavor == "anthropic" and not request.headers.get("anthropic-version"):
            return Problem(400, "anthropic-version: header is required", "invalid_request_error")
        if not isinstance(body, dict):
            return unparseable_problem(flavor)
        if flavor == "anthropic":
            return validate_anthropic(body)
        return validate_openai(flavor, body)

    def _admit(
        self,
        flavor: Flavor,
        model: str,
        behavior: ModelBehavior,
        window: RateLimitWindow,
        now: float,
        reply: Reply,
        headers: dict[str, str],
    ) -> tuple[Problem, float] | None:
        """Count the request against the model's limits; a 429 problem and wait if over."""
        with self._lock:
            wait = window.request_wait(behavior, now)
            token_wait = None if wait else window.token_wait(behavior, now, reply.usage.input)
            if wait is None and token_wait is None:
                window.admit(now, reply.usage.input, reply.usage.output)
            snapshot = window.snapshot(behavior, now)
        headers.update(rate_limit_headers(flavor, snapshot))
        if wait is not None:
            limit = snapshot.request_limit
            return rate_limited_problem(flavor, model, limit, wait, tokens=False), wait
        if token_wait is not None:
            limit = snapshot.token_limit
            return rate_limited_problem(flavor, model, limit, token_wait, tokens=True), token_wait
        return None

    def _scripted_status(self, model: str, behavior: ModelBehavior) -> int | None:
        if behavior.permanent_error is not None:
            return behavior.permanent_error
        with self._lock:
            position = self._error_cursor.get(model, 0)
            if position < len(behavior.errors):
                self._error_cursor[model] = position + 1
                return behavior.errors[position]
        return None

    async def _other_route(self, request: web.Request) -> web.StreamResponse:
        anthropic_style = "anthropic-version" in request.headers
        if request.method == "GET" and request.path in _MODEL_ROUTES:
            flavor: Flavor = "anthropic" if anthropic_style else _MODEL_ROUTES[request.path]
            key = extract_key(flavor, request.headers)
            problem = auth_problem(flavor, key, self._valid_keys)
            if problem is not None:
                body = error_body(
                    flavor, problem.status, problem.message, type_=problem.type_, code=problem.code
                )
                return json_response(body, problem.status, {})
            with self._lock:
                names = sorted(self._behaviors)
            return json_response(model_list(flavor, names), 200, {})
        if request.method == "POST" and request.path == "/v1/messages/count_tokens":
            try:
                body = await request.json()
            except ValueError:
                body = {}
            tokens = parse_anthropic(body if isinstance(body, dict) else {}).prompt_tokens
            return json_response({"input_tokens": tokens}, 200, {})
        if anthropic_style:
            return json_response(error_body("anthropic", 404, "Not Found"), 404, {})
        text = f"Invalid URL ({request.method} {request.path})"
        return json_response(error_body("openai", 404, text), 404, {})

    # --- configuration ----------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FakeProviderServer:
        """Build from JSON-style config (what `llmrouter fake-server --config` reads).

        >>> FakeProviderServer.from_config(
        ...     {"port": 0, "valid_keys": ["sk-local"], "models": {"gpt-4o-mini": {"errors": [500]}}})
        """
        allowed = {"host", "port", "valid_keys", "strict_models", "models", "record_limit"}
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ValueError(f"unknown fake-server config key(s): {', '.join(unknown)}")
        models = {
            name: ModelBehavior.from_dict(fields or {})
            for name, fields in (config.get("models") or {}).items()
        }
        keys = config.get("valid_keys")
        return cls(
            models,
            host=str(config.get("host", "127.0.0.1")),
            port=int(config.get("port", 0)),
            valid_keys=list(keys) if keys is not None else None,
            strict_models=bool(config.get("strict_models", False)),
            record_limit=config.get("record_limit"),
        )


def serve_forever(config_path: str | None, port: int) -> None:
    """Run a fake server in the foreground until Ctrl-C, printing its base URLs.

    `port` wins over the config file's port unless it is 0 (meaning "any free port").
    """
    config: dict[str, Any] = {}
    if config_path:
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
    if port or "port" not in config:
        config["port"] = port
    config.setdefault("record_limit", 10_000)  # a server left running must not grow forever
    server = FakeProviderServer.from_config(config).start()
    print(f"Fake provider server listening on {server.url}")
    print(f"  OpenAI     base_url: {server.openai_base_url}")
    print(f"  Anthropic  base_url: {server.anthropic_base_url}")
    print(f"  Groq       base_url: {server.groq_base_url}")
    print(f"  OpenRouter base_url: {server.openrouter_base_url}")
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


# --- helpers -------------------------------------------------------------------------------------
