"""The policy layers, one module each, in stack order: ledger, cache, queue, fallback, budget, breaker, retry, ratelimit, http."""
