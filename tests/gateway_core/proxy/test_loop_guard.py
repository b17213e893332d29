"""Tests for gateway_core/proxy/loop_guard.py and routing/loop_guard.py: which received hop
entries count (trust), 508 on the gateway's own entry or past the hop budget, and the value
sent upstream (no sockets; a recording exchange)."""

from __future__ import annotations

from typing import Any

from gateway_core.proxy.filters import run_gateway_chain
from gateway_core.proxy.flags import ResponseFlag
from gateway_core.proxy.loop_guard import counted_entries
from gateway_core.routing.loop_guard import LoopGuardSpec, hop_tag
from gateway_core.routing.request import RequestHead

SECRET = b"s" * 32
ME = LoopGuardSpec(b"tier1-a", max_hops=4, secret=SECRET)
PEER = LoopGuardSpec(b"tier1-b", max_hops=4, secret=SECRET)  # shares the secret
STRANGER = LoopGuardSpec(b"tier2-x", max_hops=4, secret=b"t" * 32)


class Down:
    def __init__(self, trusted: bool) -> None:
        self.trust_forwarded = trusted


class Ex:
    def __init__(self, hops: bytes | None, trusted: bool) -> None:
        fields = [] if hops is None else [(b"x-gateway-hops", hops)]
        self.req = RequestHead(b"GET", b"/", b"", b"h", b"http", 80, fields)
        self.down = Down(trusted)
        self.hops = b""
        self.replies: list[tuple[int, Any, Any]] = []

    def local_reply(self, status: int, flag: Any, body: Any = None, *a: Any, **kw: Any) -> None:
        self.replies.append((status, flag, body))


def run(hops: bytes | None, trusted: bool, spec: LoopGuardSpec = ME) -> Ex:
    ex = Ex(hops, trusted)
    answered = run_gateway_chain(ex, (spec,))  # type: ignore[arg-type]
    assert answered == bool(ex.replies)
    return ex


def test_entry_is_id_and_hmac_tag() -> None:
    assert ME.entry == b"tier1-a;" + hop_tag(SECRET, b"tier1-a")
    assert len(hop_tag(SECRET, b"x")) == 16
    assert ME.verifies(PEER.entry)
    assert not ME.verifies(STRANGER.entry)
    assert not ME.verifies(b"tier1-a")
    assert not ME.verifies(b"tier1-a;0000000000000000")
    assert "s" * 32 not in repr(ME)  # the secret never shows in a dump


def test_a_first_hop_sends_its_own_entry() -> None:
    ex = run(None, trusted=False)
    assert ex.replies == []
    assert ex.hops == ME.entry


def test_own_entry_comes_back_508_even_from_an_untrusted_peer() -> None:
    """A Tier-2 that routes back to its Tier-1's public address is an untrusted peer there."""
    for trusted in (False, True):
        ex = run(STRANGER.entry + b", " + ME.entry, trusted)
        assert ex.replies == [(508, ResponseFlag.LOOP_DETECTED, ex.replies[0][2])]
        assert b"loop detected" in ex.replies[0][2]


def test_forged_entries_from_an_untrusted_client_are_dropped() -> None:
    forged = b", ".join([b"tier1-a", b"tier1-a;0123456789abcdef", *[b"g%d" % i for i in range(20)]])
    ex = run(forged, trusted=False)
    assert ex.replies == []
    assert ex.hops == ME.entry


def test_entries_of_gateways_sharing_the_secret_count_from_untrusted_peers() -> None:
    ex = run(PEER.entry + b", " + STRANGER.entry, trusted=False)
    assert ex.hops == PEER.entry + b", " + ME.entry


def test_a_trusted_proxy_s_entries_are_kept_as_sent() -> None:
    ex = run(b"edge-1;abc,  tier1-z;def", trusted=True)
    assert ex.hops == b"edge-1;abc, tier1-z;def, " + ME.entry


def test_max_hops_counts_only_entries_that_count() -> None:
    three = b", ".join(b"gw%d;x" % i for i in range(3))
    assert run(three, trusted=True).replies == []
    four = three + b", gw3;x"
    ex = run(four, trusted=True)
    assert ex.replies[0][:2] == (508, ResponseFlag.LOOP_DETECTED)
    assert b"too many gateway hops" in ex.replies[0][2]
    # The same list from an untrusted client does not count at all.
    assert run(four, trusted=False).replies == []


def test_untrusted_header_verification_is_bounded() -> None:
    many = [b"f%d;0000000000000000" % i for i in range(1000)] + [PEER.entry]
    assert counted_entries(ME, b", ".join(many), trusted=False) == []
    assert counted_entries(ME, PEER.entry + b"," + b",".join(many), trusted=False) == [PEER.entry]
