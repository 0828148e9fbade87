"""In-process scripted backends for policy tests: no sockets, fully deterministic.

>>> backend = ScriptedBackend("a", [RateLimitError("slow down", status_code=429), "hello"])
>>> (await backend.chat(request)).text     # first call raises, second answers "hello"
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.clock import SYSTEM_CLOCK, Clock
from ..types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    FinishReason,
    Message,
    ToolCall,
    Usage,
)

__all__ = ["ScriptedBackend", "ScriptedStep"]


@dataclass(slots=True)
class ScriptedStep:
    """One scripted answer: text (split into `chunks` when streamed), or an error to raise.

    `fail_after_chunks` raises `error` after that many content chunks of a stream.
    `delay_s` advances/sleeps the backend's clock before answering.
    """

    text: str = ""
    error: BaseException | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage | None = None
    chunks: int = 3
    fail_after_chunks: int | None = None
    delay_s: float = 0.0
    cost: float | None = None


Script = Sequence["ScriptedStep | BaseException | str"]


class ScriptedBackend:
    """A `ChatBackend` that plays a script, one step per call, repeating the last step.

    `calls` records every request it received, in order.
    """

    def __init__(
        self,
        deployment: str,
        script: Script = ("ok",),
        *,
        provider: str = "scripted",
        model: str = "scripted-model",
        clock: Clock = SYSTEM_CLOCK,
        on_call: Callable[[ChatRequest], Any] | None = None,
    ) -> None:
        self.deployment = deployment
        self.provider = provider
        self.model = model
        self.clock = clock
        self.steps = [self._step(s) for s in script] or [ScriptedStep(text="ok")]
        self.calls: list[ChatRequest] = []
        self.on_call = on_call
        self.closed = False

    @staticmethod
    def _step(step: ScriptedStep | BaseException | str) -> ScriptedStep:
        if isinstance(step, ScriptedStep):
            return step
        if isinstance(step, BaseException):
            return ScriptedStep(error=step)
        return ScriptedStep(text=step)

    def _next(self, request: ChatRequest) -> ScriptedStep:
        index = min(len(self.calls), len(self.steps) - 1)
        self.calls.append(request)
        if self.on_call is not None:
            self.on_call(request)
        return self.steps[index]

    def _usage(self, step: ScriptedStep, request: ChatRequest) -> Usage:
        if step.usage is not None:
            return step.usage
        prompt = sum(len(m.text.split()) for m in request.messages) + 3
        completion = max(1, len(step.text.split()))
        return Usage(
            input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion
        )

    async def chat(self, request: ChatRequest) -> ChatResponse:
        step = self._next(request)
        if step.delay_s:
            await self.clock.sleep(step.delay_s)
        if step.error is not None and step.fail_after_chunks is None:
            raise step.error
        finish: FinishReason = "tool_calls" if step.tool_calls else "stop"
        return ChatResponse(
            message=Message(role="assistant", content=step.text, tool_calls=list(step.tool_calls)),
            finish_reason=finish,
            usage=self._usage(step, request),
            cost=step.cost,
            provider=self.provider,
            model=self.model,
            deployment=self.deployment,
            latency_s=step.delay_s,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        step = self._next(request)
        if step.delay_s:
            await self.clock.sleep(step.delay_s)
        if step.error is not None and step.fail_after_chunks is None:
            raise step.error
        words = step.text.split(" ")
        size = max(1, -(-len(words) // max(1, step.chunks)))
        pieces = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
        for n, piece in enumerate(pieces):
            if step.fail_after_chunks is not None and n >= step.fail_after_chunks:
                assert step.error is not None
                raise step.error
            yield ChatChunk(text=piece if n == 0 else " " + piece, deployment=self.deployment)
        if step.fail_after_chunks is not None and step.error is not None:
            raise step.error
        yield ChatChunk(
            is_final=True,
            finish_reason="tool_calls" if step.tool_calls else "stop",
            usage=self._usage(step, request),
            cost=step.cost,
            provider=self.provider,
            model=self.model,
            deployment=self.deployment,
        )

    async def aclose(self) -> None:
        self.closed = True
