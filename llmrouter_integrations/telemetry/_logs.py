"""Structured request logs: one INFO record per request, one WARNING per failed attempt.

Logger `llmrouter_integrations.requests`, silent until the application configures logging
(it has a `NullHandler`; INFO needs the level set). Each record carries the fields as
`record.llmrouter` (a dict) for JSON formatters; no message text, no API key.

>>> logging.getLogger("llmrouter_integrations.requests").setLevel(logging.INFO)
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["log", "log_attempt_failure", "log_request"]

log = logging.getLogger("llmrouter_integrations.requests")
log.addHandler(logging.NullHandler())


def log_request(fields: dict[str, Any]) -> None:
    """The per-request record (call only when `log.isEnabledFor(logging.INFO)`)."""
    log.info(
        "llmrouter request %s deployment=%s model=%s input_tokens=%s output_tokens=%s "
        "cost_usd=%s latency_s=%.3f attempts=%s cached=%s%s",
        fields["outcome"],
        fields.get("deployment"),
        fields.get("model"),
        fields.get("input_tokens"),
        fields.get("output_tokens"),
        fields.get("cost_usd"),
        fields["latency_s"],
        fields["attempts"],
        fields["cached"],
        f" error.type={fields['error_type']}" if fields.get("error_type") else "",
        extra={"llmrouter": fields},
    )


def log_attempt_failure(fields: dict[str, Any]) -> None:
    """The record of one failed attempt (call only when WARNING is enabled)."""
    log.warning(
        "llmrouter attempt %s failed on %s: %s: %s",
        fields["attempt"],
        fields["deployment"],
        fields["error_type"],
        fields["error"],
        extra={"llmrouter": fields},
    )
