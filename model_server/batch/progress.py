"""Progress: a tqdm bar (rows, rows/s, ETA) on a terminal, a log line every 10 s elsewhere (a
Kubernetes pod's log), nothing with ``--progress none``."""

from __future__ import annotations

import logging
import sys
import threading
import time

logger = logging.getLogger("model_server.batch")
LOG_EVERY_S = 10.0


class Progress:
    def __init__(self, mode: str, total: int | None, already: int = 0):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "log"
        self.mode, self.total, self.done, self.rejected = mode, total, already, 0
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._start_done = already
        self._last_log = self._start
        self._bar = None
        if mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=already, unit=" rows", unit_scale=True, dynamic_ncols=True)

    def advance(self, rows: int, rejected: int) -> None:
        with self._lock:
            self.done += rows
            self.rejected += rejected
            if self._bar is not None:
                self._bar.update(rows)
                if rejected:
                    self._bar.set_postfix(rejected=self.rejected, refresh=False)
            elif self.mode == "log" and time.monotonic() - self._last_log >= LOG_EVERY_S:
                self._last_log = time.monotonic()
                logger.info("%s", self.line())

    def line(self) -> str:
        elapsed = time.monotonic() - self._start
        rate = (self.done - self._start_done) / elapsed if elapsed > 0 else 0.0
        of = f" of {self.total:,} ({100 * self.done / self.total:.0f}%)" if self.total else ""
        eta = ""
        if self.total and rate > 0:
            eta = f", ETA {time.strftime('%H:%M:%S', time.gmtime((self.total - self.done) / rate))}"
        return f"{self.done:,}{of} rows, {rate:,.0f} rows/s, {self.rejected:,} rejected{eta}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
