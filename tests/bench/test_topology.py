"""Benchmark: the two-tier chains come up, speak TLS between tiers, and answer end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench import environment
from bench.procs import ProcessSet, http_get
from bench.topology import Pinning, Topology, build_paths
from certs.generate import generate_lab_certs

NO_NGINX = not (shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin"))


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
