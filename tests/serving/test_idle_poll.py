"""The adaptive polling window of the server's loops (serving/idle_poll.py), on a fake clock:
Linux guest halt polling's grow / shrink rule, and a wait that never polls past its timeout."""
from __future__ import annotations

import pytest

from serving.idle_poll import IdlePoll


class FakeLoop:
    """A clock that moves only when the loop polls or blocks, and one event due at ``event_at``."""

    def __init__(self, poll_cost: float = 10e-6):
        self.now, self.poll_cost = 0.0, poll_cost
        self.event_at: float | None = None
        self.polls = self.blocks = 0
        self.blocked_for: list[float | None] = []

    def clock(self) -> float:
        return self.now

    def poll(self):
        self.polls += 1
        self.now += self.poll_cost
        return self._take()

    def block(self, timeout):
        self.blocks += 1
        self.blocked_for.append(timeout)
        if self.event_at is not None and (timeout is None or self.event_at <= self.now + timeout):
            self.now = max(self.now, self.event_at)
        else:
            self.now += timeout
        return self._take()

    def _take(self):
        if self.event_at is not None and self.now >= self.event_at:
            self.event_at = None
            return ["event"]
        return []

    def idle_for(self, poller: IdlePoll, gap: float, timeout=None):
        """One wait whose event comes ``gap`` seconds after it starts."""
        self.event_at = self.now + gap
        return poller.wait(self.poll, self.block, bool, timeout)


def make(max_us: int, loop: FakeLoop) -> IdlePoll:
    return IdlePoll(max_us, clock=loop.clock, yield_core=lambda: None)


def test_a_steady_stream_grows_the_window_until_it_catches_the_next_request():
    loop = FakeLoop()
    poller = make(1000, loop)
    windows = []
    for _ in range(6):
        assert loop.idle_for(poller, 300e-6) == ["event"]
        windows.append(round(poller.window * 1e6))
    # haltpoll: the first miss starts at grow_start (50 µs), each further miss doubles it; the
    # waits that the 400 µs window catches leave it alone
    assert windows == [50, 100, 200, 400, 400, 400]
    blocks = loop.blocks
    loop.idle_for(poller, 300e-6)
    assert loop.blocks == blocks, "the grown window caught the request without sleeping"


def test_the_window_never_grows_past_max():
    loop = FakeLoop()
    poller = make(120, loop)
    for _ in range(5):
        loop.idle_for(poller, 110e-6)
    assert poller.window == pytest.approx(120e-6)


def test_sparse_requests_shrink_the_window_to_nothing():
    loop = FakeLoop()
    poller = make(1000, loop)
    for _ in range(5):
        loop.idle_for(poller, 300e-6)
    assert poller.window == pytest.approx(400e-6)
    windows = []
    for _ in range(12):
        loop.idle_for(poller, 50e-3)      # longer than max: polling would have been wasted
        windows.append(poller.window * 1e6)
    assert windows[:3] == pytest.approx([200, 100, 50])
    assert windows[-1] == 0.0
    polls = loop.polls
    loop.idle_for(poller, 50e-3)
    assert loop.polls - polls == 1, "a zero window looks once, then sleeps"


def test_a_wait_polls_no_longer_than_its_timeout_and_blocks_for_the_rest():
    loop = FakeLoop()
    poller = make(1000, loop)
    poller.window = 800e-6
    assert poller.wait(loop.poll, loop.block, bool, timeout=200e-6) == []      # a timer, no event
    assert loop.now == pytest.approx(200e-6, abs=20e-6)
    assert loop.blocked_for[-1] is not None and loop.blocked_for[-1] <= 200e-6
    assert poller.window == pytest.approx(800e-6), "a timeout is not an idle gap between requests"


def test_zero_timeout_and_zero_max_never_spin():
    loop = FakeLoop()
    poller = make(1000, loop)
    poller.window = 800e-6
    assert poller.wait(loop.poll, loop.block, bool, timeout=0) == []
    assert (loop.polls, loop.blocks) == (1, 0)
    off = make(0, loop)
    loop.idle_for(off, 300e-6)
    assert loop.blocks == 1 and off.window == 0.0


def test_negative_max_is_refused():
    with pytest.raises(ValueError, match="busy_poll_us"):
        IdlePoll(-1)
