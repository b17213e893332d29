"""Lab fixtures: ``gateway-lab up`` as a real subprocess on the topology's fixed ports.

One lab at a time, machine-wide: a file lock serialises test sessions (the ports are fixed by
deploy/lab/topology.yaml), and a test skips with the reason when a needed port is taken by
something else.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_lab.processes import check_sockets
from gateway_lab.topology import load_topology
from tests.lab.labkit import RunningLab

LOCK_WAIT = 900.0
LOCK_FILE = Path(tempfile.gettempdir()) / "gateway-lab-tests.lock"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """A running lab for the whole module, started and stopped through its command."""
    with _one_lab_at_a_time():
        topology = load_topology()
        busy = check_sockets(topology.sockets())
        if busy:
            pytest.skip("lab ports are busy: " + "; ".join(busy[:3]))
        running = RunningLab(tmp_path_factory.mktemp("lab") / ".lab", topology)
        running.start()
        try:
            yield running
        finally:
            running.stop()


class _one_lab_at_a_time:
    def __enter__(self) -> None:
        self._fd = os.open(LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o666)
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self._fd)
                    pytest.skip(f"another lab test run held {LOCK_FILE} for {LOCK_WAIT:.0f}s")
                time.sleep(0.5)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
