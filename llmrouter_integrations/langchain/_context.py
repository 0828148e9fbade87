"""The LangChain call being served: its config, and the user, tags and metadata it carries.

LangChain calls `_stream` without a run manager on two paths (`stream()`, and `invoke()`
under a streaming handler such as LangGraph's `stream_mode="messages"`). So that the
router still learns who the call is for, the public entry points remember the call's
config in a context variable, set only while LangChain's own code runs a step, with the
model run's `run_id` chosen up front so router events can name that run.

    >>> model.invoke("hi", config={"metadata": {"user": "alice"}, "tags": ["beta"]})
    # -> ChatRequest(user="alice", tags=("beta",), metadata={"user": "alice"})
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config
from langchain_core.utils.uuid import uuid7

__all__ = ["RemembersCallConfig", "call_attribution", "current_call_config"]

_CALL_CONFIG: ContextVar[RunnableConfig | None] = ContextVar("llmrouter_call_config", default=None)

# LangChain and LangGraph bookkeeping that is not the user's attribution metadata.
_INTERNAL_METADATA_PREFIXES = ("ls_", "langgraph_", "checkpoint_", "__", "lc_")
_INTERNAL_TAG_PREFIXES = ("seq:", "graph:", "langsmith:", "map:", "branch:")


def current_call_config() -> RunnableConfig:
    """The config of the call being served (or of the enclosing runnable)."""
    return _CALL_CONFIG.get() or ensure_config()


def _with_run_id(config: RunnableConfig | None) -> RunnableConfig:
    # The model run's id, chosen here (LangChain takes a config's run_id as the run's), so
    # that events sent from `_stream`, which gets no run manager, name the right run.
    call_config = ensure_config(config)
    if call_config.get("run_id") is None:
        call_config["run_id"] = uuid7()
    return call_config


def call_attribution(
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
    model_tags: Sequence[str] | None,
    model_metadata: Mapping[str, Any] | None,
) -> tuple[list[str], dict[str, Any]]:
    """The call's user tags and scalar metadata, LangChain/LangGraph bookkeeping removed."""
    if run_manager is not None:
        tags, metadata = list(run_manager.tags), dict(run_manager.metadata)
    else:
        config = current_call_config()
        tags = [*(config.get("tags") or ()), *(model_tags or ())]
        metadata = {**(model_metadata or {}), **(config.get("metadata") or {})}
    kept_tags = [tag for tag in dict.fromkeys(tags) if not tag.startswith(_INTERNAL_TAG_PREFIXES)]
    kept_metadata = {
        key: value
        for key, value in metadata.items()
        if not key.startswith(_INTERNAL_METADATA_PREFIXES)
        and isinstance(value, (str, int, float, bool))
    }
    return kept_tags, kept_metadata


class RemembersCallConfig(BaseChatModel):
    """A chat model whose public entry points remember the call's config for `_stream`.

    The variable is set around each step of LangChain's own code and reset before a chunk
    reaches the caller, so it never leaks into the caller's other work.
    """

    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        call_config = _with_run_id(config)
        token = _CALL_CONFIG.set(call_config)
        try:
            return super().invoke(input, call_config, stop=stop, **kwargs)
        finally:
            _CALL_CONFIG.reset(token)

    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        call_config = _with_run_id(config)
        token = _CALL_CONFIG.set(call_config)
        try:
            return await super().ainvoke(input, call_config, stop=stop, **kwargs)
        finally:
            _CALL_CONFIG.reset(token)

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        call_config = _with_run_id(config)
        inner = super().stream(input, call_config, stop=stop, **kwargs)
        try:
            while True:
                token = _CALL_CONFIG.set(call_config)
                try:
                    item = next(inner, None)
                finally:
                    _CALL_CONFIG.reset(token)
                if item is None:
                    return
                yield item
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        call_config = _with_run_id(config)
        inner = super().astream(input, call_config, stop=stop, **kwargs)
        try:
            while True:
                token = _CALL_CONFIG.set(call_config)
                try:
                    item = await inner.__anext__()
                except StopAsyncIteration:
                    return
                finally:
                    _CALL_CONFIG.reset(token)
                yield item
        finally:
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()
