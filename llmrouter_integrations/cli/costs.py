"""The `llmrouter costs` subcommand: print a spend report from a SQLite ledger, or plot it.

$ llmrouter costs --ledger costs.db --by model --since 7d
$ llmrouter costs --ledger sqlite:///costs.db --since 2026-11-01 --plot spend.png
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..costs.ledger import GROUPINGS, CostLedger

__all__ = ["add_costs_parser", "parse_since", "plot_spend", "run_costs"]

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")
_UNIT_SECONDS = {"m": 60, "h": 3_600, "d": 86_400, "w": 604_800}


def parse_since(text: str, now: float | None = None) -> float:
    """Epoch seconds from "7d" / "24h" / "30m" / "2w" (before `now`) or an ISO date or time
    ("2026-11-01", "2026-11-01T09:30", with or without a zone; naive means UTC).

    >>> parse_since("2026-11-01")
    1793491200.0
    """
    match = _RELATIVE.match(text)
    if match:
        amount, unit = float(match.group(1)), match.group(2)
        return (time.time() if now is None else now) - amount * _UNIT_SECONDS[unit]
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read {text!r} as a time: use 7d, 24h, 30m, 2w or a date like 2026-11-01"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _since_argument(text: str) -> str:
    try:
        parse_since(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_costs_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `costs` to the `llmrouter` command's subparsers; it runs `run_costs`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "costs",
        help="spend report from a cost ledger (SQLite)",
        description="Print what the router spent, from the SQLite ledger a Router wrote "
        "(Router(ledger='sqlite:///costs.db')).",
    )
    parser.add_argument(
        "--ledger",
        default=os.environ.get("LLMROUTER_LEDGER", "costs.db"),
        help="ledger file or sqlite:/// URL (default: $LLMROUTER_LEDGER or costs.db)",
    )
    parser.add_argument("--by", choices=GROUPINGS, default="provider", help="group rows by")
    parser.add_argument(
        "--since", type=_since_argument, help="only from then on: 7d, 24h, 30m, 2w or 2026-11-01"
    )
    parser.add_argument("--until", type=_since_argument, help="only before then (same forms)")
    parser.add_argument("--plot", metavar="OUT.png", help="also draw daily spend by provider")
    parser.set_defaults(run=run_costs)
    return parser


def _ledger_path(spec: str) -> Path:
    if spec.startswith("sqlite://"):
        path = spec[len("sqlite://") :]
        return Path(path[1:] if path.startswith("/") else path)
    return Path(spec)


def run_costs(args: argparse.Namespace) -> int:
    """Print the report (and write the plot); 0 on success, 1 without a ledger, 2 without matplotlib."""
    path = _ledger_path(args.ledger)
    if not path.is_file():
        print(
            f"llmrouter costs: no ledger at {path}. Routers write one with "
            f"Router(ledger='sqlite:///{path}').",
            file=sys.stderr,
        )
        return 1
    from ..state.ledger_sqlite import SQLiteLedgerStore

    ledger = CostLedger(SQLiteLedgerStore(path))
    try:
        now = time.time()
        if args.since:
            ledger = ledger.since(parse_since(args.since, now))
        if args.until:
            ledger = ledger.until(parse_since(args.until, now))
        print(ledger.report(by=args.by))
        if args.plot:
            try:
                plot_spend(ledger, args.plot)
            except ImportError:
                print(
                    "llmrouter costs: --plot needs matplotlib: "
                    "pip install 'llmrouter_integrations[plot]'",
                    file=sys.stderr,
                )
                return 2
            print(f"\nwrote {args.plot}")
    finally:
        ledger.close()
    return 0


def plot_spend(ledger: CostLedger, out: str | os.PathLike[str]) -> None:
    """Draw daily spend per provider as stacked bars into an image file (needs matplotlib)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    providers = list(ledger.by_provider())
    daily = {name: ledger.where(provider=name).by_day() for name in providers}
    days = sorted({day for per_day in daily.values() for day in per_day})

    figure = Figure(figsize=(max(6.0, min(16.0, 0.35 * len(days) + 4)), 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    bottom = [0.0] * len(days)
    for name in providers:
        heights = [daily[name][day].cost_usd if day in daily[name] else 0.0 for day in days]
        axes.bar(days, heights, bottom=bottom, label=name, width=0.8)
        bottom = [b + h for b, h in zip(bottom, heights)]
    axes.set_title("LLM spend per day (UTC) by provider")
    axes.set_ylabel("USD")
    # Cents are too coarse for small spends: show enough decimals to tell the ticks apart.
    peak = max(bottom, default=0.0)
    decimals = 2 if peak >= 1 else min(8, 2 + max(0, -math.floor(math.log10(peak)))) if peak else 2
    axes.yaxis.set_major_formatter(f"${{x:,.{decimals}f}}")
    if any(bottom):
        axes.set_ylim(0, max(bottom) * 1.1)
    if providers:
        axes.legend()
    figure.autofmt_xdate()
    figure.savefig(out)
