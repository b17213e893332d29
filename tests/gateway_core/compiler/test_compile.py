"""Control path: compile_snapshot is pure, deterministic and rejects conflicting listeners."""

from __future__ import annotations

import dataclasses

import pytest

from gateway_core.compiler import compile_snapshot
from gateway_core.config.diagnostics import ConfigError
from tests.gateway_core.compiler.compiler_testkit import (
    GATEWAY,
    NODE,
    https_gateway,
    resources,
    snapshot,
    virtual_service,
)

VS = virtual_service("  - route: [{destination: {host: app, port: {number: 8000}}}]")


def test_same_input_gives_same_version() -> None:
    """Compiling twice gives equal versions; a changed field changes the version."""
    a = snapshot(GATEWAY + VS)
    b = snapshot(GATEWAY + VS)
    c = snapshot(GATEWAY + VS.replace("8000", "8001"))
    assert a.version == b.version
    assert a.version != c.version
    assert a.clusters.keys() == b.clusters.keys()


def test_node_identity_is_part_of_the_version() -> None:
    """The same YAML for another locality is another snapshot (priorities differ)."""
    res = resources(GATEWAY + VS)
    other = dataclasses.replace(NODE, cluster_name="cluster-9")
    assert compile_snapshot(res, NODE).version != compile_snapshot(res, other).version


def test_compile_reads_no_files() -> None:
    """Certificate paths are resolved to strings only: compiling needs no file to exist."""
    snap = snapshot(https_gateway("{mode: SIMPLE, credentialName: missing-secret}"))
    tls = snap.listeners[0].servers[0].tls
    assert tls is not None
    assert (tls.cert_file, tls.key_file) == (
        "/certs/missing-secret/tls.crt",
        "/certs/missing-secret/tls.key",
    )
    assert tls.min_version == "TLSV1_2"


def test_two_protocols_on_one_port_are_rejected() -> None:
    """HTTP and HTTPS servers cannot share a port: the whole config is rejected."""
    text = GATEWAY + https_gateway(
        "{mode: SIMPLE, serverCertificate: /c, privateKey: /k}",
        name="gw2",
        port=80,
        host="b.example.com",
    )
    with pytest.raises(ConfigError, match="port 80 is already used with protocol HTTP"):
        compile_snapshot(resources(text), NODE)
