"""Costs: pricing (`pricing`), token estimates (`tokens`), the cost ledger view (`ledger`) and its
printable report (`report`), budget arithmetic (`budget`).

    >>> from llmrouter_integrations.costs import Budget, CostLedger, Pricer
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .budget import Budget, BudgetManager, BudgetStatus
    from .ledger import CostLedger, LedgerEntry, ledger_from_url
    from .pricing import Pricer, UnitPrices, decimal_cost
    from .report import format_report, money
    from .tokens import estimate_input_tokens, estimate_text_tokens

__all__ = [
    "Budget",
    "BudgetManager",
    "BudgetStatus",
    "CostLedger",
    "LedgerEntry",
    "Pricer",
    "UnitPrices",
    "decimal_cost",
    "estimate_input_tokens",
    "estimate_text_tokens",
    "format_report",
    "ledger_from_url",
    "money",
]

# Each name loads its module on first use, so importing the package costs nothing.
_WHERE = {
    "Budget": "budget",
    "BudgetManager": "budget",
    "BudgetStatus": "budget",
    "CostLedger": "ledger",
    "LedgerEntry": "ledger",
    "Pricer": "pricing",
    "UnitPrices": "pricing",
    "decimal_cost": "pricing",
    "estimate_input_tokens": "tokens",
    "estimate_text_tokens": "tokens",
    "format_report": "report",
    "ledger_from_url": "ledger",
    "money": "report",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
