"""Benchmark: the paths come up and answer end to end: the two-tier chains with TLS between
tiers, the HTTP/2 and gRPC paths through nginx, and our legs of those, or the reason why not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench import configs, drivers, environment
from bench.paths import (
    ALL_KEYS,
    FLOOR_KEYS,
    GRPC_KEYS,
    H2_KEYS,
    JWT_KEYS,
    TRACE_KEYS,
    build_paths,
    select,
)
from bench.procs import ProcessSet, http_get
from bench.topology import PATH_KEYS, Pinning, Topology
from certs.generate import generate_lab_certs

NO_NGINX = not (shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin"))
NO_H2LOAD = shutil.which("h2load") is None


def test_unknown_keys_are_rejected_before_starting(tmp_path: Path) -> None:
    """A typo in --only fails without starting any process."""
    tools, missing = environment.find_tools(need_taskset=False)
    if tools is None:
        pytest.skip(f"missing: {missing}")
    procs = ProcessSet(tmp_path)
    with pytest.raises(ValueError, match="unknown paths"):
        build_paths(Topology(procs, tools, Pinning(None, None)), ["b-ours", "x"])
    assert procs.procs == []


@pytest.mark.skipif(NO_NGINX, reason="nginx is not installed (apt-get install nginx-light)")
def test_tls_chains_answer_and_terminate_tls_at_tier2(tmp_path: Path) -> None:
    """Ours and nginx's Tier-1 -> TLS -> Tier-2 -> pod chains both answer 200 ok with both
    tiers alive, and each Tier-2 was configured to listen with TLS."""
    tools, missing = environment.find_tools(need_taskset=False)
    assert tools is not None, missing
    generate_lab_certs(tmp_path / "certs")
    tools = environment.with_cert_dir(tools, tmp_path / "certs")
    procs = ProcessSet(tmp_path)
    try:
        paths = build_paths(
            Topology(procs, tools, Pinning(None, None)), ["c-ours-tls", "c-nginx-tls"]
        )
        assert [p.key for p in paths] == ["c-ours-tls", "c-nginx-tls"]
        for path in paths:
            assert http_get(path.url) == (200, b"ok")
            tier1, tier2 = path.proxies
            assert tier1.alive() and tier2.alive()
        tier2_configs = [
            tmp_path / "c-ours-tls-tier2.yaml",
            tmp_path / "nginx-c-nginx-tls-tier2.conf",
        ]
        assert "protocol: HTTPS" in tier2_configs[0].read_text()
        assert " ssl;" in tier2_configs[1].read_text()
    finally:
        procs.stop_all()
    assert procs.procs == []


def test_pinning_uses_two_cpus_or_none() -> None:
    """With two CPUs the load gets the first and proxies the second; unpinned on request."""
    assert environment.pinning(False) == Pinning(None, None)
    pin = environment.pinning(True)
    assert (pin.load is None) == (pin.proxy is None)
    if pin.load is not None:
        assert pin.proxy is not None and pin.load < pin.proxy
    assert "pinning" in environment.describe(pin)


def test_path_selection_by_group_and_key() -> None:
    """No selection is the HTTP/1.1 set; --h2/--grpc pick their groups; keys add to groups;
    the order is always the measuring order; unknown keys are refused."""
    assert select([], []) == PATH_KEYS
    assert select(["h2"], []) == H2_KEYS
    assert H2_KEYS == ("h2-ours-1x100", "h2-nginx-1x100", "h2-ours-10x10", "h2-nginx-10x10")
    assert select(["grpc"], ["h2-nginx-1x100", "b-ours"]) == (
        "b-ours",
        "h2-nginx-1x100",
        *GRPC_KEYS,
    )
    # Every path but the traced, JWT and floor ones, which only --only (or --floor) names.
    only_named = (*TRACE_KEYS, *JWT_KEYS, *FLOOR_KEYS)
    assert select(["h1", "h2", "grpc"], []) == tuple(k for k in ALL_KEYS if k not in only_named)
    with pytest.raises(ValueError, match="unknown paths"):
        select(["h2"], ["h3-ours"])


@pytest.mark.skipif(NO_NGINX or NO_H2LOAD, reason="needs nginx and h2load (nghttp2-client)")
def test_h2_and_grpc_paths_come_up_checked(tmp_path: Path) -> None:
    """The nginx legs come up and pass their end-to-end check (20 requests with ALPN h2
    through ``ssl http2``; 20 gRPC calls through ``grpc_pass``). Our legs either pass the same
    check or carry the reason they cannot be measured, naming the protocol."""
    tools, missing = environment.find_tools(need_taskset=False)
    assert tools is not None, missing
    generate_lab_certs(tmp_path / "certs")
    tools = environment.with_cert_dir(tools, tmp_path / "certs")
    procs = ProcessSet(tmp_path)
    keys = ["h2-ours-1x100", "h2-nginx-1x100", "grpc-direct", "grpc-ours", "grpc-nginx"]
    try:
        paths = build_paths(Topology(procs, tools, Pinning(None, None)), keys)
        by_key = {p.key: p for p in paths}
        assert list(by_key) == keys
        for key in ("h2-nginx-1x100", "grpc-direct", "grpc-nginx"):
            assert by_key[key].failure == "" and not by_key[key].optional
        h2 = by_key["h2-nginx-1x100"]
        assert (h2.load.tool, h2.load.clients, h2.load.streams) == ("h2load", 1, 100)
        assert h2.url.startswith(f"https://{configs.TIER2_SNI}:")
        assert " ssl http2;" in (tmp_path / "nginx-h2-nginx-1x100.conf").read_text()
        assert by_key["grpc-direct"].proxies == ()
        assert (by_key["grpc-nginx"].load.clients, by_key["grpc-nginx"].load.streams) == (10, 10)
        for key in ("h2-ours-1x100", "grpc-ours"):
            ours = by_key[key]
            assert ours.optional
            if ours.failure:
                assert "h2" in ours.failure or "HTTP/2" in ours.failure, ours.failure
                assert "Traceback" not in ours.failure
                assert not ours.failure.startswith(key), "the key is printed once, by the caller"
            else:
                drivers.check(ours)
        assert "name: grpc, protocol: GRPC" in (tmp_path / "grpc-ours.yaml").read_text()
    finally:
        procs.stop_all()
    assert procs.procs == []


def test_missing_h2load_is_named_with_its_package(tmp_path: Path) -> None:
    """Asked for HTTP/2 paths on a PATH without h2load, the tool check names the Debian
    package to install; without HTTP/2 paths h2load is not needed."""
    for tool in ("wrk", "taskset"):
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"{tool} is not installed")
        (tmp_path / tool).symlink_to(found)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", str(tmp_path))
        tools, missing = environment.find_tools(need_taskset=True, need_h2load=True)
        assert tools is None
        assert "h2load: apt-get install -y nghttp2-client" in missing
        without, _ = environment.find_tools(need_taskset=True, need_grpc=True)
    if not NO_NGINX:
        assert without is not None
