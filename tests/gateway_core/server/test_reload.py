"""Control path: the config watcher notices every kind of change, including ConfigMap swaps."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from gateway_core.server.reload import ConfigWatcher, files_signature


def _configmap(root: Path, version: str, text: str) -> None:
    """Lay out a directory the way kubelet does: ``..data`` → ``..<version>``, files as links."""
    target = root / f"..{version}"
    target.mkdir()
    (target / "gateway.yaml").write_text(text)
    tmp = root / "..data_tmp"
    os.symlink(target.name, tmp)
    os.replace(tmp, root / "..data")
    link = root / "gateway.yaml"
    if not link.is_symlink():
        os.symlink("..data/gateway.yaml", link)


def test_configmap_symlink_swap_changes_the_signature(tmp_path: Path) -> None:
    """Swapping ``..data`` to a new version changes the signature although no visible file moved."""
    _configmap(tmp_path, "2024_01_01", "a: 1\n")
    before = files_signature([str(tmp_path)])
    _configmap(tmp_path, "2024_01_02", "a: 1\n")
    after = files_signature([str(tmp_path)])
    assert [name for name, *_ in before] == [str(tmp_path / "gateway.yaml")]
    assert before != after


def test_unchanged_files_keep_their_signature(tmp_path: Path) -> None:
    """Reading a directory twice without changes gives the same signature (no spurious reload)."""
    (tmp_path / "a.yaml").write_text("x: 1\n")
    assert files_signature([str(tmp_path)]) == files_signature([str(tmp_path)])


async def test_watcher_calls_back_once_per_settled_change(tmp_path: Path) -> None:
    """An edit triggers exactly one reload callback after the files settle."""
    cfg = tmp_path / "a.yaml"
    cfg.write_text("x: 1\n")
    calls: list[int] = []

    async def on_change() -> None:
        calls.append(1)

    watcher = ConfigWatcher([str(tmp_path)], 0.02, on_change)
    watcher.mark_loaded()  # as the gateway does before its first load
    task = asyncio.ensure_future(watcher.run())
    try:
        await asyncio.sleep(0.1)
        assert calls == []
        cfg.write_text("x: 2\n")
        for _ in range(100):
            if calls:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        assert calls == [1]
    finally:
        task.cancel()
