"""The last ids seen, bounded: to drop an event routed already (senders), or replayed already
(replay, reading a stream that may hold an event twice)."""

from __future__ import annotations

from collections import OrderedDict


class RecentIds:
    """The last `size` ids seen, to drop an event whose id was routed already."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        if self._size <= 0:
            return
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        while len(self._ids) > self._size:
            self._ids.popitem(last=False)
