"""`adpush run`'s two trainings side by side: both finish, and a failure of either surfaces."""
import threading
import time

import pytest

from adpush.run import _run_beside


def test_both_run_at_once_and_both_finish():
    started, order = threading.Event(), []

    def background():
        started.set()
        time.sleep(0.2)
        order.append("background")

    def foreground():
        assert started.wait(5)  # the background began before the foreground returned
        order.append("foreground")

    _run_beside(background, foreground)
    assert order == ["foreground", "background"]  # the caller waited for the slower one


def test_a_background_failure_is_raised_after_the_foreground_finished():
    done = []

    def background():
        raise RuntimeError("cascade failed")

    with pytest.raises(RuntimeError, match="cascade failed"):
        _run_beside(background, lambda: done.append(True))
    assert done == [True]


def test_the_foreground_failure_wins_and_the_background_is_awaited():
    finished = []

    def background():
        time.sleep(0.1)
        finished.append(True)

    def foreground():
        raise ValueError("sf failed")

    with pytest.raises(ValueError, match="sf failed"):
        _run_beside(background, foreground)
    assert finished == [True]
