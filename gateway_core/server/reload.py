"""Control path: watch configuration files and reload on change or SIGHUP.

Polling the files' (inode, size, mtime) is reliable for every way a file changes, including the
``..data`` symlink swap Kubernetes uses for ConfigMap volumes (the resolved inode changes), and
needs no platform watcher. A change is acted on once the files have been stable for one short
settle period, so an editor's half-written save is not loaded.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

_log = logging.getLogger("gateway.reload")

Signature = tuple[tuple[str, int, int, int], ...]
SETTLE = 0.2


def files_signature(paths: Sequence[str]) -> Signature:
    entries: list[tuple[str, int, int, int]] = []
    for raw in paths:
        path = Path(raw)
        files = _config_files(path) if path.is_dir() else [path]
        for f in files:
            try:
                st = os.stat(f)
            except OSError:
                entries.append((str(f), -1, -1, -1))
                continue
            entries.append((str(f), st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(entries)


def _config_files(root: Path) -> list[Path]:
    from gateway_core.config.loader import CONFIG_SUFFIXES  # with YAML: not in workers

    out: list[Path] = []
    try:
        children = sorted(root.iterdir())
    except OSError:
        return out
    for entry in children:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            out.extend(_config_files(entry))
        elif entry.suffix in CONFIG_SUFFIXES:
            out.append(entry)
    return out


class ConfigWatcher:
    def __init__(
        self,
        paths: Sequence[str],
        interval: float,
        on_change: Callable[[], Awaitable[object]],
    ) -> None:
        self._paths = list(paths)
        self._interval = interval
        self._on_change = on_change
        self._last: Signature = ()
        """Set by ``mark_loaded``, which the gateway calls just before its first load (a worker,
        which never watches files, never scans them)."""

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            current = files_signature(self._paths)
            if current == self._last:
                continue
            await asyncio.sleep(SETTLE)
            settled = files_signature(self._paths)
            if settled != current:
                continue  # still being written; look again next tick
            self._last = settled
            _log.info("configuration files changed; reloading")
            await self._on_change()

    def mark_loaded(self) -> None:
        """Before the first load and after a SIGHUP reload: the files as they are now are the
        loaded state."""
        self._last = files_signature(self._paths)
