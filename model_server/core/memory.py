"""Returning freed memory to the system, after a load or a large body freed much of it."""

from __future__ import annotations

import ctypes
import ctypes.util


def give_memory_back() -> None:
    """glibc keeps freed heap for reuse; the parse of a large body freed hundreds of MB of it."""
    libc = ctypes.util.find_library("c")
    if libc:
        trim = getattr(ctypes.CDLL(libc), "malloc_trim", None)
        if trim is not None:
            trim(0)
