"""What may be committed: one partition's offsets in flight, answered in any order, committed in order.

At-least-once means an offset is committed only when its message and every earlier one of its
partition have been answered and acknowledged: a later message's success must not commit past
an earlier one still in flight (or failed), whatever order the answers complete in.

The consumer answers a fetch's records of a partition together: it starts and answers the span
by its last offset, which stands for every offset after the span before.
"""

from __future__ import annotations

from collections import deque


class PartitionOffsets:
    def __init__(self) -> None:
        self._in_flight: deque[int] = deque()  # fetch order, which is offset order
        self._answered: set[int] = set()
        self.committable: int | None = None  # the next offset to read after a restart
        self.committed: int | None = None  # the group's, as last committed or found at assignment
        self.first_fetched: int | None = None

    def __len__(self) -> int:
        return len(self._in_flight)

    def start(self, offset: int) -> None:
        if self.first_fetched is None:
            self.first_fetched = offset
        self._in_flight.append(offset)

    def answered(self, offset: int) -> None:
        self._answered.add(offset)
        in_flight = self._in_flight
        while in_flight and in_flight[0] in self._answered:
            first = in_flight.popleft()
            self._answered.discard(first)
            self.committable = first + 1

    def to_commit(self) -> int | None:
        """The offset to commit now, if it moved since the last commit."""
        if self.committable is not None and self.committable != self.committed:
            return self.committable
        return None
