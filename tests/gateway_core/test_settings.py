"""Tests for gateway_core/settings.py and the loop-guard flags of gateway_core/cli.py: the
gateway id and hop secret are drawn once per settings and kept by every copy of them (so a
supervisor's workers share them), and the flags set them."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest

from gateway_core.cli import _parser, _settings
from gateway_core.settings import GatewaySettings
from tier1_gateway.cli import ROLE


def test_default_gateway_id_is_hostname_and_random_drawn_once() -> None:
    a = GatewaySettings(tier="tier1", config_paths=())
    b = GatewaySettings(tier="tier1", config_paths=())
    host, _, suffix = a.gateway_id.rpartition("-")
    assert host == socket.gethostname()
    assert len(suffix) == 8 and int(suffix, 16) >= 0
    assert a.gateway_id != b.gateway_id
    assert len(a.hop_secret) == 32 and a.hop_secret != b.hop_secret
    copy = dataclasses.replace(a, access_log="off")
    assert (copy.gateway_id, copy.hop_secret) == (a.gateway_id, a.hop_secret)
    node = a.node()
    assert (node.gateway_id, node.hop_secret, node.max_gateway_hops) == (
        a.gateway_id,
        a.hop_secret,
        8,
    )
    assert a.workers == 1
    assert "hop_secret" not in repr(a)


def settings(*args: str) -> GatewaySettings:
    return _settings(_parser(ROLE).parse_args(["run", "--config", "x.yaml", *args]), ROLE)


def test_loop_guard_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_HOP_SECRET", raising=False)
    secret = tmp_path / "hop.key"
    secret.write_bytes(b"shared-secret\n")
    s = settings(
        "--gateway-id", "edge-eu", "--max-gateway-hops", "3", "--hop-secret-file", str(secret)
    )
    assert (s.gateway_id, s.max_gateway_hops, s.hop_secret) == ("edge-eu", 3, b"shared-secret")
    monkeypatch.setenv("GATEWAY_HOP_SECRET", "from-env")
    assert settings().hop_secret == b"from-env"
    monkeypatch.delenv("GATEWAY_HOP_SECRET")
    default = settings()
    assert default.gateway_id.startswith(socket.gethostname() + "-")
    assert len(default.hop_secret) == 32 and default.max_gateway_hops == 8


def test_max_gateway_hops_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        settings("--max-gateway-hops", "0")
    assert "expected a positive number" in capsys.readouterr().err


def test_repeated_config_flags_load_every_path() -> None:
    """``--config a --config b`` loads both (a later flag never drops an earlier one), like
    ``--config a b``."""
    parser = _parser(ROLE)
    repeated = parser.parse_args(["run", "--config", "a", "--config", "b", "c"])
    assert repeated.config == ["a", "b", "c"]
    assert parser.parse_args(["run", "--config", "a", "b"]).config == ["a", "b"]
