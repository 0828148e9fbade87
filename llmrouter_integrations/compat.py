"""The seed's API, kept: `APILoader(provider="auto", api_keys=...)`, a Router by provider name.

>>> llm = APILoader(provider="auto", api_keys={"openai": "sk-..."})
>>> llm.complete(prompt="Explain quantum computing", max_tokens=200).text
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ._assemble import deployments_from_env
from .router import Router
from .types import ChatResponse

__all__ = ["APILoader"]


class APILoader(Router):
    """The seed's API, kept: pick providers by name or "auto" and call `complete`.

    >>> llm = APILoader(provider="auto", api_keys={"openai": "sk-..."})
    >>> llm.complete(prompt="Explain quantum computing", max_tokens=200).text
    """

    def __init__(
        self,
        provider: str = "auto",
        api_keys: Mapping[str, str] | None = None,
        strategy: Any = "balanced",
        *,
        environ: Mapping[str, str] | None = None,
        **router_kwargs: Any,
    ) -> None:
        env = os.environ if environ is None else environ
        deployments = router_kwargs.pop("deployments", None) or deployments_from_env(
            env, provider, dict(api_keys or {})
        )
        super().__init__(deployments, strategy=strategy, environ=env, **router_kwargs)
        self.provider = provider

    def complete(self, prompt: str, **options: Any) -> ChatResponse:
        return super().complete(prompt, **options)
