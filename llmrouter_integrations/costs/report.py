"""Formats ledger totals as a plain-text spend report a finance person can read.

>>> print(format_report(ledger.summary(), ledger.by_provider(), by="provider", filters=LedgerFilter()))
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from ..state.ledger import LedgerFilter, Summary

__all__ = ["format_report", "money"]

_CENT = Decimal("0.01")


def money(value: Decimal) -> str:
    """USD for people: four decimals, or six below a cent so tiny calls do not show as $0.

    >>> money(Decimal("12.3")), money(Decimal("0.00021"))
    ('$12.3000', '$0.000210')
    """
    if value and abs(value) < _CENT:
        return f"${value:,.6f}"
    return f"${value:,.4f}"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _scope(filters: LedgerFilter) -> str:
    parts = []
    if filters.since is not None:
        parts.append(f"since {_when(filters.since)} UTC")
    if filters.until is not None:
        parts.append(f"until {_when(filters.until)} UTC")
    for name in ("user", "tag", "deployment", "provider", "model"):
        value = getattr(filters, name)
        if value is not None:
            parts.append(f"{name} = {value}")
    return ", ".join(parts) or "all time"


def format_report(
    total: Summary, groups: dict[str, Summary], *, by: str, filters: LedgerFilter
) -> str:
    """The report: a title, the totals, then one row per group and a total row."""
    title = f"LLM spend by {by}, {_scope(filters)}"
    lines = [title, "=" * len(title)]
    if total.first_time is not None and total.last_time is not None:
        lines.append(f"Requests from   {_when(total.first_time)} to {_when(total.last_time)} UTC")
    lines.append(f"Total spend     {money(total.cost)} over {_requests(total.requests)}")
    lines.append(f"Failed          {_requests(total.failed_requests)}")
    lines.append(f"Cache hits      {_requests(total.cache_hits)}, saved {money(total.saved)}")
    unknown = total.unknown_cost_requests
    if unknown:
        lines.append(
            f"Unknown cost    {_requests(unknown)} with no known price, not in the totals "
            "(set Deployment(price=...))"
        )
    else:
        lines.append("Unknown cost    none")
    if by == "tag":
        lines.append("A request with several tags counts under each of them.")
    lines.append("")

    header = [by, "requests", "failed", "cache hits", "input tokens", "output tokens"]
    header += ["cost (USD)", "share", "saved (USD)"]
    if unknown:
        header.append("no price")
    rows = [_row(name, summary, total.cost, unknown) for name, summary in groups.items()]
    footer = _row("total", total, total.cost, unknown)
    widths = [max(len(r[i]) for r in (header, *rows, footer)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:]))
        return "  ".join((first, *rest)).rstrip()

    rule = line(["-" * w for w in widths])
    lines += [line(header), rule, *(line(r) for r in rows), rule, line(footer)]
    return "\n".join(lines)


def _requests(count: int) -> str:
    return f"{count:,} request" if count == 1 else f"{count:,} requests"


def _row(name: str, summary: Summary, total_cost: Decimal, unknown: int) -> list[str]:
    share = f"{summary.cost / total_cost:.1%}" if total_cost else "-"
    row = [
        name,
        f"{summary.requests:,}",
        f"{summary.failed_requests:,}",
        f"{summary.cache_hits:,}",
        f"{summary.input_tokens:,}",
        f"{summary.output_tokens:,}",
        money(summary.cost),
        share,
        money(summary.saved),
    ]
    if unknown:
        row.append(f"{summary.unknown_cost_requests:,}")
    return row
