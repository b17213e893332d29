"""Tests for gateway_core/proxy/pipeline.py: a piece cut by ``heads_cut`` never completes more
request heads than there is room for, checked against llhttp itself."""

from __future__ import annotations

import random

import httptools
import pytest

from gateway_core.proxy.pipeline import MIN_HEAD, heads_cut


class Counter:
    """Counts completed heads and tracks the Content-Length body bytes still expected, as the
    client connection does."""

    def __init__(self) -> None:
        self.heads = 0
        self.length = 0
        self.body_left = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-length":
            self.length = int(value)

    def on_headers_complete(self) -> None:
        self.heads += 1
        self.body_left, self.length = self.length, 0

    def on_body(self, body: bytes) -> None:
        if self.body_left:
            self.body_left -= len(body)

    def on_message_complete(self) -> None:
        self.body_left = 0


def burst(rng: random.Random, count: int) -> bytes:
    """Pipelined requests of varied shapes: bodies (with empty lines in them), chunked bodies,
    leading empty lines, one or many header fields."""
    out = []
    for i in range(count):
        kind = rng.randrange(4)
        fields = b"".join(b"X-%d: v\r\n" % j for j in range(rng.randrange(3)))
        if kind == 0:
            out.append(b"GET /%d HTTP/1.1\r\nHost: h\r\n%s\r\n" % (i, fields))
        elif kind == 1:
            body = b"a\r\n\r\nb\n\nc" * rng.randrange(3)
            out.append(
                b"POST /%d HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s"
                % (i, len(body), body)
            )
        elif kind == 2:
            out.append(
                b"POST /%d HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\n\n\r\n\r\n0\r\n\r\n" % i
            )
        else:
            out.append(b"\r\nGET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i)
    return b"".join(out)


def test_no_shorter_http1_head_completes() -> None:
    """``MIN_HEAD`` holds for llhttp: every head shorter than it that completes is HTTP/0.9
    (which the connection refuses with 505)."""
    shortest = b"GET / HTTP/1.0\r\n\r\n"
    candidates = {
        shortest[:i] + shortest[j:] for i in range(MIN_HEAD) for j in range(i + 1, MIN_HEAD + 1)
    }
    candidates |= {c.replace(b"\r\n", b"\n", 1) for c in list(candidates)}
    for candidate in candidates:
        counter = Counter()
        parser = httptools.HttpRequestParser(counter)
        try:
            parser.feed_data(candidate)
        except httptools.HttpParserError:
            continue
        assert counter.heads == 0 or parser.get_http_version() == "0.9", candidate


@pytest.mark.parametrize("skip_bodies", [False, True])
@pytest.mark.parametrize("seed", range(20))
def test_a_piece_never_completes_more_heads_than_room(seed: int, skip_bodies: bool) -> None:
    """Random bursts arriving in random reads, parsed piece by piece with random room (with
    and without skipping known body bytes): each piece completes at most ``room`` heads,
    progress is always made, and every head is parsed in the end."""
    rng = random.Random(seed)
    count = 60
    data = burst(rng, count)
    counter = Counter()
    parser = httptools.HttpRequestParser(counter)
    tail = b""
    pos = 0
    while pos < len(data):
        read = data[pos : pos + rng.randrange(1, 200)]
        while read:
            room = rng.randrange(1, 5)
            cut = heads_cut(read, tail, room, counter.body_left if skip_bodies else 0)
            assert cut > 0
            before = counter.heads
            parser.feed_data(read[:cut])
            assert counter.heads - before <= room
            tail = (tail + read[:cut])[-2:]
            pos += cut
            read = read[cut:]
    assert counter.heads == count


def test_cut_right_after_the_last_head_that_fits() -> None:
    one = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    assert heads_cut(one * 3, b"", 2) == 2 * len(one)
    assert heads_cut(one * 3, b"", 3) == 3 * len(one)
    assert heads_cut(b"\n" + one * 2, b"\r\n\r", 1) == 1  # an empty line straddling two reads
    shortest = b"GET / HTTP/1.0\r\n\r\n"
    assert len(shortest) == MIN_HEAD
    assert heads_cut(shortest * 3, b"", 2) == 2 * MIN_HEAD
    assert heads_cut(shortest * 2, b"", 2) == 2 * MIN_HEAD
    body = b"a\r\n\r\n" * 4
    assert heads_cut(body + one * 2, b"", 1, len(body)) == len(body) + len(one)
    assert heads_cut(body, b"\r\n", 1, len(body)) == len(body)
