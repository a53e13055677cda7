"""Fixtures every integration test module shares.

watchdog: a SIGALRM per test, so a hung server fails that test instead of
stalling the run; each module sets its own TEST_TIMEOUT (seconds).
"""

import signal

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_watches: needs watches (deselected by ZKD_NO_WATCHES=1)")


class Watchdog(Exception):
    pass


@pytest.fixture(autouse=True)
def watchdog(request):
    limit = getattr(request.module, "TEST_TIMEOUT", 120)

    def on_alarm(signum, frame):
        raise Watchdog("test exceeded %ds" % limit)
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
