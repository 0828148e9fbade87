"""How a router reports itself: `InstrumentationSettings` and the conventions' version.

>>> Router(deployments=[...], instrument=InstrumentationSettings(capture_content=True))
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["CONTENT_ENV", "SCHEMA_URL", "SEMCONV_VERSION", "InstrumentationSettings"]

SEMCONV_VERSION = "1.44.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


class InstrumentationSettings:
    """How a router reports itself to OpenTelemetry; `instrument=True` means the defaults.

    `capture_content` records prompts and answers on spans (`gen_ai.input.messages`,
    `gen_ai.output.messages`): the conventions' opt-in, off unless set here or
    `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`. Providers default to the
    global ones (`opentelemetry.trace.set_tracer_provider`, `metrics.set_meter_provider`).

    >>> Router(deployments=[...], instrument=InstrumentationSettings(capture_content=True))
    """

    # A plain class, not a dataclass: building one at import costs more than the module.
    __slots__ = ("capture_content", "meter_provider", "tracer_provider")

    def __init__(
        self,
        *,
        capture_content: bool | None = None,
        tracer_provider: Any = None,
        meter_provider: Any = None,
    ) -> None:
        self.capture_content = capture_content
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider

    def __repr__(self) -> str:
        return (
            f"InstrumentationSettings(capture_content={self.capture_content!r}, "
            f"tracer_provider={self.tracer_provider!r}, meter_provider={self.meter_provider!r})"
        )

    def content_enabled(self) -> bool:
        """Whether message content goes on spans (the setting, else the environment)."""
        if self.capture_content is not None:
            return self.capture_content
        return os.environ.get(CONTENT_ENV, "").strip().lower() in ("1", "true", "yes")
