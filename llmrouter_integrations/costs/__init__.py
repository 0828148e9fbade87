"""Costs: pricing, token estimates, the cost ledger and its report, budget arithmetic."""
