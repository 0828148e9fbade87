"""Optional dependencies: checked before use, and named with the exact pip command when missing."""

from __future__ import annotations

import importlib.util

__all__ = ["require"]


def require(module: str, *, package: str, extra: str, feature: str) -> None:
    """Raise a one-line `ModuleNotFoundError` naming the pip command if `module` is missing.

    >>> require("json", package="json", extra="all", feature="the demo")
    >>> require("no_such_mod", package="no-such", extra="all", feature="the demo")
    Traceback (most recent call last):
    ModuleNotFoundError: the demo needs no-such, which is not installed: pip install 'llmrouter_integrations[all]'
    """
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package of a dotted name is missing
        found = False
    if not found:
        raise ModuleNotFoundError(
            f"{feature} needs {package}, which is not installed: "
            f"pip install 'llmrouter_integrations[{extra}]'",
            name=module,
        )
