"""Cache-aware routing: which deployment served a long prompt prefix recently.

Providers cache prompt prefixes (Anthropic at `cache_control` marks, OpenAI by itself for
1024+ tokens) per deployment, for about five minutes. A request that shares a long prefix
with a recent one is cheaper where that prefix was served: the planner lowers that
deployment's estimated cost by what a cache hit saves (the prefix at the input price minus
the prefix at the cached price), so the cost and balanced strategies keep a conversation
on the deployment that holds its cache unless another is cheaper even so. Fallback and
load balancing then stop throwing caches away.

    >>> affinity = PrefixAffinity(clock)
    >>> affinity.record(request, "anthropic/claude-sonnet-4-5")
    >>> affinity.holder(next_turn)          # the deployment and the shared prefix's tokens
    ('anthropic/claude-sonnet-4-5', 5400)

Prefixes are fingerprinted at message boundaries (tools first, then each message), with
token counts from the local estimate; only prefixes of 1024+ estimated tokens count.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict

from ..core.clock import Clock
from ..costs.tokens import estimate_input_tokens, estimate_text_tokens
from ..types import ChatRequest, ContentPart, Message

__all__ = ["MIN_PREFIX_TOKENS", "PrefixAffinity"]

MIN_PREFIX_TOKENS = 1024
_TTL_S = 300.0  # Anthropic's default cache lifetime; OpenAI keeps prefixes 5-10 minutes
_MAX_ENTRIES = 20_000
_MAX_BOUNDARIES = 24  # fingerprints recorded per request (the longest prefixes)


def _part(part: ContentPart) -> str:
    if part.type == "text":
        return part.text or ""
    # Media by size and head: enough to tell documents apart without hashing megabytes twice.
    data = part.data or part.url or part.image_url or part.text or ""
    block = json.dumps(part.block.data, sort_keys=True) if part.block else ""
    return f"\0{part.type}:{len(data)}:{data[:256]}{block}\0"


def _message_key(message: Message) -> str:
    """The message as text for fingerprinting (raw text, no JSON escaping of long prompts)."""
    content = message.content
    text = content if isinstance(content, str) else "".join(map(_part, content or ()))
    head = f"{message.role}\0{message.tool_call_id or ''}\0"
    if message.tool_calls:
        head += json.dumps([[c.id, c.name, c.arguments] for c in message.tool_calls])
    return head + "\0" + text


class PrefixAffinity:
    """Recent prefix -> deployment map with a lifetime; bounded, oldest dropped first."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._served: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def _boundaries(self, request: ChatRequest) -> list[tuple[str, int]]:
        """(fingerprint, estimated tokens) at each message boundary of 1024+ tokens."""
        if estimate_input_tokens(request) < MIN_PREFIX_TOKENS:
            return []
        digest = hashlib.sha256()
        tokens = 0
        for tool in request.tools or ():
            text = json.dumps([tool.name, tool.description, tool.parameters], sort_keys=True)
            digest.update(text.encode())
            tokens += estimate_text_tokens(text)
        out = []
        for message in request.messages:
            text = _message_key(message)
            digest.update(b"\0" + text.encode())
            tokens += estimate_text_tokens(text)
            if tokens >= MIN_PREFIX_TOKENS:
                out.append((digest.copy().hexdigest(), tokens))
        return out

    def record(self, request: ChatRequest, deployment: str) -> None:
        """`deployment` just served `request`: its prefixes are now cached there."""
        boundaries = self._boundaries(request)
        if not boundaries:
            return
        now = self._clock.now()
        for key, _ in boundaries[-_MAX_BOUNDARIES:]:
            self._served[key] = (deployment, now)
            self._served.move_to_end(key)
        while len(self._served) > _MAX_ENTRIES:
            self._served.popitem(last=False)

    def holder(self, request: ChatRequest) -> tuple[str, int] | None:
        """The deployment that served the longest shared prefix in the last 5 minutes, and
        that prefix's estimated tokens; None when there is none."""
        if not self._served:
            return None
        now = self._clock.now()
        for key, tokens in reversed(self._boundaries(request)):
            found = self._served.get(key)
            if found is not None and now - found[1] <= _TTL_S:
                return found[0], tokens
        return None
