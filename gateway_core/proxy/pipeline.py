"""Data path: how much of a pipelined burst may be parsed without exceeding the pipeline's room.

llhttp (httptools) parses whatever it is fed and cannot be paused from a callback, so the
client connection bounds the parse instead: a request head always ends with an empty line (LF,
an optional CR, LF), and a piece of input holding at most ``room`` such line ends can complete
at most ``room`` request heads. Body bytes that happen to contain an empty line only make the
piece shorter. The search is two ``bytes.find`` scans, so a large body costs no Python loop,
and the rest of a body whose length the parser knows is not scanned at all. A piece too short
to hold more heads than there is room for is not scanned either.
"""

from __future__ import annotations

MIN_HEAD = 18
"""The shortest request head llhttp completes with an HTTP/1.x version: ``GET / HTTP/1.0``,
CRLF, CRLF (it needs CRLF after the version). A shorter one is HTTP/0.9, refused with 505,
which ends the parse of the connection, so it never becomes a request."""


def heads_cut(data: bytes, tail: bytes, room: int, body: int = 0) -> int:
    """The length of the longest prefix of ``data`` in which at most ``room`` HTTP/1.x request
    heads can complete; ``tail``: the (up to two) bytes parsed just before ``data``; ``body``:
    how many bytes of a Content-Length body the parser still expects (they end no head)."""
    size = len(data)
    if body >= size or (size - body - 1) // MIN_HEAD < room or data.find(b"\n", body) < 0:
        return size  # the first head may have begun earlier; each further one needs MIN_HEAD
    ends: list[int] = []
    if not body:  # an empty line may have started in the previous piece
        if tail.endswith(b"\n"):
            if data[:1] == b"\n":
                ends.append(1)
            elif data[:2] == b"\r\n":
                ends.append(2)
        elif tail.endswith(b"\n\r") and data[:1] == b"\n":
            ends.append(1)
    crlf = data.find(b"\n\r\n", body)
    lf = data.find(b"\n\n", body)
    while len(ends) <= room and (crlf >= 0 or lf >= 0):
        if lf < 0 or 0 <= crlf < lf:
            ends.append(crlf + 3)
            crlf = data.find(b"\n\r\n", crlf + 1)
        else:
            ends.append(lf + 2)
            lf = data.find(b"\n\n", lf + 1)
    if len(ends) <= room:
        return size
    return sorted(ends)[room - 1]
