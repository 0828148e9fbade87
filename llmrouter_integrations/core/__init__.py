"""The router's layers: each wraps a `ChatBackend` and is itself one."""
