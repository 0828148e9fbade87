"""Ids for what a process puts in the shared store (holds, permits, lock owners): `new_id`.

A `uuid4()` reads the OS's random source on every call; a store trip makes two a call. Here
a process draws 80 random bits once (again in a forked child, which would otherwise repeat
its parent's ids) and numbers its ids after them: unique across processes and machines as
long as no two processes draw the same 80 bits, and never repeated within one process.

    >>> new_id()
    '6f1c2a9e0b3d4c5e7a81'
"""

from __future__ import annotations

import itertools
import os

__all__ = ["new_id"]

_RANDOM_BYTES = 10  # 80 bits: two of a billion processes share a prefix ~1 in 2.4 million


def _draw() -> None:
    global _prefix, _numbers
    _prefix = os.urandom(_RANDOM_BYTES).hex()
    _numbers = itertools.count()  # next() on it is atomic: threads never get the same one


_prefix = ""
_numbers = itertools.count()
_draw()
os.register_at_fork(after_in_child=_draw)


def new_id() -> str:
    """A new id (hex: a fixed-length per-process random prefix, then a counter).

    >>> a, b = new_id(), new_id()
    >>> a != b and a[:20] == b[:20]
    True
    """
    return f"{_prefix}{next(_numbers):x}"
