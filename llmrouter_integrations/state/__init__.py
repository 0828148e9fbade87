"""Where state lives: cache entries and stores, ledger stores, and the state processes share.

Shared state across processes (`Router(state=...)`: budget holds, rate windows, circuits,
in-flight locks) has its protocol in `shared` and one module per backend (`shared_memory`,
`shared_sqlite`, `shared_redis`); `guard` turns a store outage into a quick fallback.
"""
