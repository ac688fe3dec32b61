"""Slots for the first attempts a sender makes where it routed their events.

An event takes one slot per delivery it attempts here, so a fan-out of ten holds ten: what this
process and its endpoints serve at once is attempts, not events. A slot is held for the call and
comes free when it ends; the attempt's record is then confirmed with its event. Slots are handed
out first come first served, so a wide event is not starved by narrow ones behind it.

A waiter gives up once no slot has come free for `stall_s`. While slots keep turning over, an
event waits here for its turn: holding a prefetched message costs nothing, and the deliver queue's
hop it saves is the broker's costliest. Attempts that stopped finishing (endpoints gone slow) send
the events behind them to the deliver queue within `stall_s`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class AttemptSlots:
    """`capacity` attempts at once, taken in FIFO order."""

    def __init__(
        self, capacity: int, stall_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._free = capacity
        self._stall_s = stall_s
        self._clock = clock
        self._last_freed = clock()
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def free(self) -> int:
        return self._free

    async def acquire(self, count: int) -> int:
        """Take `count` slots (at most the capacity: a fan-out wider than it takes them all);
        returns how many were taken. TimeoutError once none came free for `stall_s`."""
        wanted = min(count, self._capacity)
        if not self._waiting and self._free >= wanted:
            self._free -= wanted
            return wanted
        given: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((wanted, given))
        waiting_since = self._clock()
        try:
            while not given.done():
                stalled_s = self._clock() - max(waiting_since, self._last_freed)
                if stalled_s >= self._stall_s:
                    raise TimeoutError(f"no attempt slot came free for {self._stall_s:g}s")
                await asyncio.wait({given}, timeout=self._stall_s - stalled_s)
        except BaseException:
            if given.done() and not given.cancelled():
                self.release(wanted)  # given just as our caller went away: hand them on
            else:
                given.cancel()
                self._waiting.remove((wanted, given))
                self._hand_out()  # we may have held up narrower waiters behind us
            raise
        return wanted

    def release(self, count: int) -> None:
        self._free = min(self._capacity, self._free + count)
        self._last_freed = self._clock()
        self._hand_out()

    def _hand_out(self) -> None:
        while self._waiting and self._free >= self._waiting[0][0]:
            wanted, given = self._waiting.popleft()
            self._free -= wanted
            given.set_result(None)
