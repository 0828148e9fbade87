"""The LangChain model profile of a router: only what every deployment in it supports.

A fallback may land on any deployment, so an agent that relies on a capability (native
structured output, images, a context window) must get it from all of them.

    >>> profile_for(Router(deployments=["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]))
    {'max_input_tokens': 128000, 'tool_calling': True, 'structured_output': True, ...}
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, cast

from langchain_core.language_models.model_profile import ModelProfile

if TYPE_CHECKING:
    from ..router import Router
    from ..routing.catalog import Catalog, ModelInfo
    from ..types import Deployment

__all__ = ["profile_for"]

# The reasoning vocabulary the router maps onto every reasoning model's own setting.
_EFFORT_LEVELS = ["minimal", "low", "medium", "high"]


@cache
def _shared_catalog() -> Catalog:
    from ..routing.catalog import Catalog

    return Catalog()


def _info(router: Router, deployment: Deployment) -> ModelInfo:
    """Model facts from the router's catalog when it has one, else the package's."""
    model_info = getattr(router, "model_info", None)
    if callable(model_info):
        info: ModelInfo = model_info(deployment.key)
        return info
    catalog = getattr(router, "catalog", None) or _shared_catalog()
    found: ModelInfo = catalog.for_deployment(deployment)
    return found


def profile_for(router: Router) -> ModelProfile:
    """The capability intersection of the router's deployments as a `ModelProfile`.

    Context and output limits are the smallest among deployments, and are left out when
    any deployment's is unknown. Images and files a tool returns reach every provider
    (OpenAI's in a user turn right after the tool results), so the tool-message flags
    follow the input ones. Video is never claimed: the router does not carry it.
    """
    deployments = list(router.deployments)
    infos = [_info(router, deployment) for deployment in deployments]

    def every(capability: str) -> bool:
        # getattr: a catalog without a capability's column has no model that claims it.
        return all(bool(getattr(info, capability, False)) for info in infos)

    reasoning = every("reasoning")
    profile: dict[str, Any] = {
        "text_inputs": True,
        "text_outputs": True,
        "image_inputs": every("vision"),
        "image_url_inputs": every("vision"),
        "image_tool_message": every("vision"),
        "pdf_inputs": every("pdf"),
        "audio_inputs": every("audio"),
        "video_inputs": False,
        "pdf_tool_message": every("pdf"),
        "tool_calling": every("tools"),
        "tool_choice": every("tools"),
        "tool_call_streaming": every("tools"),
        "structured_output": every("json_schema"),
        "reasoning_output": reasoning,
    }
    if reasoning:
        profile["reasoning_effort_levels"] = list(_EFFORT_LEVELS)
    windows = [info.context_window for info in infos]
    if windows and all(window is not None for window in windows):
        profile["max_input_tokens"] = min(w for w in windows if w is not None)
    outputs = [info.max_output_tokens for info in infos]
    if outputs and all(limit is not None for limit in outputs):
        profile["max_output_tokens"] = min(o for o in outputs if o is not None)
    return cast(ModelProfile, profile)
