"""Tests: the hung-test watchdog of tests/conftest.py ends a run that hangs after a failure.

pytest-timeout and pytest's faulthandler both cancel their timers when a test fails, so a
teardown that then hangs (CI hung for good in uvloop's ``loop.close()`` after a failed test)
was unguarded. A real pytest run in a subprocess, with this conftest as a plugin, shows the
watchdog armed again: the run ends within seconds and prints where it hung."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import REPO

HANGS_AFTER_FAILING = """
import time
import pytest

@pytest.fixture
def stuck_teardown():
    yield
    time.sleep(120)

def test_fails_then_hangs_in_teardown(stuck_teardown):
    assert False, "the failure that cancels pytest-timeout's timer"
"""


def test_a_teardown_that_hangs_after_a_failure_ends_the_run(tmp_path: Path) -> None:
    test_file = tmp_path / "test_hang.py"
    test_file.write_text(HANGS_AFTER_FAILING)
    env = {**os.environ, "GATEWAY_TEST_HANG_SECONDS": "3"}
    started = time.monotonic()
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest"]
    done = subprocess.run(
        [*argv, "--rootdir", str(tmp_path), str(test_file)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode != 0
    assert elapsed < 60, elapsed
    out = done.stdout + done.stderr
    assert "Timeout (0:00:03)!" in out, out[-2000:]
    assert "in stuck_teardown" in out, out[-2000:]
