"""Adaptive idle polling for the server's event loops (``--busy_poll_us``).

On a virtual machine a core that goes idle halts, the hypervisor takes it back, and the thread
woken on it later runs the next request 2-3x slower (serving/README.md, "Figures": "Issue 18,
adaptive idle polling on by default"). Linux guests avoid this with guest halt polling: the idle vCPU polls for
a while before it halts (Documentation/virt/guest-halt-polling.rst; 200 µs by default, 0 on this
VM's kernel command line, ``haltpoll.guest_halt_poll_ns=0``). ``IdlePoll`` does the same for
one event loop, in the loop's own thread, with that governor's adaptive window
(drivers/cpuidle/governors/haltpoll.c):

* an idle wait that ended within the window leaves it as it is;
* one that ended after the window but within ``max_us`` grows it (x2, at least 50 µs), so a
  steady stream of requests gets a window that catches the next one;
* one longer than ``max_us`` shrinks it (/2), so polling costs nothing on a server whose
  requests are sparse: the window falls to zero after a few long waits.

Each polling turn yields the core (``sched_yield``, the GIL released), so another thread that
wants the core or the GIL gets it at once.
"""
from __future__ import annotations

import os
import time
from typing import Callable, TypeVar

T = TypeVar("T")

DEFAULT_MAX_US = 1000   # the server's --busy_poll_us: covers a sequential client's turnaround here
GROW_START_S = 50e-6   # haltpoll's guest_halt_poll_grow_start
GROW = 2               # guest_halt_poll_grow
SHRINK = 2             # guest_halt_poll_shrink
MIN_WINDOW_S = 1e-6    # below this a shrunk window is zero


class IdlePoll:
    """The adaptive polling window of one event loop; ``max_us`` 0 never polls."""

    def __init__(self, max_us: int, clock: Callable[[], float] = time.monotonic,
                 yield_core: Callable[[], None] = os.sched_yield):
        if max_us < 0:
            raise ValueError(f"busy_poll_us must be >= 0, got {max_us}")
        self.max_s = max_us / 1e6
        self.window = 0.0
        self._clock, self._yield = clock, yield_core

    def adjust(self, idle: float) -> None:
        """Update the window after an idle wait of ``idle`` seconds that ended with an event."""
        if idle <= self.window:
            return
        if idle <= self.max_s:
            self.window = min(self.max_s, max(self.window * GROW, GROW_START_S))
        else:
            self.window /= SHRINK
            if self.window < MIN_WINDOW_S:
                self.window = 0.0

    def wait(self, poll: Callable[[], T], block: Callable[[float | None], T], ready: Callable[[T], bool],
             timeout: float | None = None) -> T:
        """The loop's next events: ``poll()`` looks without waiting, ``block(timeout)`` waits,
        ``ready(result)`` tells events from a timeout. Polls for up to the window (and no longer
        than ``timeout``), then blocks for what is left of ``timeout``."""
        result = poll()
        if ready(result) or timeout == 0:
            return result
        if not self.max_s:
            return block(timeout)
        start = self._clock()
        spin_end = start + (self.window if timeout is None else min(self.window, timeout))
        while self._clock() < spin_end:
            self._yield()
            result = poll()
            if ready(result):
                self.adjust(self._clock() - start)
                return result
        left = None if timeout is None else max(0.0, timeout - (self._clock() - start))
        result = block(left)
        if ready(result):
            self.adjust(self._clock() - start)
        return result
