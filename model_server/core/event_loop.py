"""The one event-loop choice of every front end: uvloop when it is installed (faster on every
route), else asyncio's own."""

from __future__ import annotations

import asyncio


def use_event_loop(choice: str = "auto") -> None:
    """``auto``: uvloop if installed; ``uvloop``: uvloop or ImportError; ``asyncio``: leave it.
    Sets the policy, so ``asyncio.run`` and KServe's ``setup_event_loop`` both get uvloop."""
    if choice not in ("auto", "uvloop"):
        return
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
