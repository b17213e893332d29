"""Data path: Maglev consistent hashing (Envoy ``MAGLEV``; Eisenbud et al., NSDI 2016, §3.4).

A lookup table of prime size M (default 65537) is filled once from the immutable host tuple:
every host walks its own permutation of the slots, ``(offset + skip * j) % M`` with
``offset = hash(key) % M`` and ``skip = hash(key, seed 1) % (M - 1) + 1``, taking the next free
slot in turn. Weights work as in Envoy: a host with the largest normalized weight takes a slot in
every round, a host with a third of that weight in every third round, so table shares follow the
weights. A request then costs one modulo: ``table[hash % M]``.

Retries: ``attempt > 0`` flips the hash with ``hash ^ (2**64 - attempt)`` (Envoy), which lands on
an unrelated slot; hosts in ``ctx.excluded`` are skipped by trying the following attempts.
Adding or removing one of N hosts moves about 1/N of the keys (tests measure it).
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Sequence

from gateway_core.upstream.host import Host
from gateway_core.upstream.lb import LbContext
from gateway_core.upstream.lb.hash_key import HASH_MASK, hash64

DEFAULT_TABLE_SIZE = 65537
MAX_TABLE_SIZE = 5000011


class MaglevLoadBalancer:
    __slots__ = ("_hosts", "_rng", "_size", "_table")

    def __init__(
        self,
        hosts: Sequence[Host],
        rng: random.Random,
        *,
        table_size: int = DEFAULT_TABLE_SIZE,
        weights: Sequence[float] | None = None,
    ) -> None:
        """``weights`` overrides ``Host.weight`` (locality-weighted hashing folds weights in)."""
        if not is_prime(table_size) or table_size > MAX_TABLE_SIZE:
            raise ValueError(f"maglev table size must be a prime <= {MAX_TABLE_SIZE}: {table_size}")
        self._hosts = tuple(hosts)
        self._rng = rng
        self._size = table_size
        raw = list(weights) if weights is not None else [float(h.weight) for h in self._hosts]
        self._table = build_table(self._hosts, raw, table_size)

    def choose_host(self, ctx: LbContext) -> Host | None:
        """``table[hash % M]``, moving on by attempt number past excluded hosts."""
        if not self._table:
            return None
        key = ctx.hash_key if ctx.hash_key is not None else self._rng.getrandbits(64)
        first = self._lookup(key, ctx.attempt)
        excluded = ctx.excluded
        if not excluded or first.key not in excluded:
            return first
        if all(h.key in excluded for h in self._hosts):
            return first
        # Each further attempt is an independent slot, so a few per host find a free one
        # unless nearly every host was tried; then a retry to a tried host is acceptable.
        for attempt in range(ctx.attempt + 1, ctx.attempt + 1 + 4 * len(self._hosts)):
            host = self._lookup(key, attempt)
            if host.key not in excluded:
                return host
        return first

    def _lookup(self, key: int, attempt: int) -> Host:
        if attempt > 0:
            key ^= (HASH_MASK + 1 - attempt) & HASH_MASK
        return self._hosts[self._table[key % self._size]]


def build_table(hosts: Sequence[Host], weights: Sequence[float], size: int) -> array[int]:
    """Host index per slot; empty when no host has a positive weight."""
    total = sum(w for w in weights if w > 0)
    if not hosts or total <= 0:
        return array("I")
    owners: list[int] = []
    offsets: list[int] = []
    skips: list[int] = []
    shares: list[float] = []
    for index, (host, weight) in enumerate(zip(hosts, weights, strict=True)):
        if weight <= 0:
            continue
        key = f"{host.address}:{host.port}".encode("latin-1")
        owners.append(index)
        offsets.append(hash64(key) % size)
        skips.append(hash64(key, 1) % (size - 1) + 1)
        shares.append(weight / total)
    return array("I", _fill(owners, offsets, skips, shares, size))


def _fill(
    owners: list[int], offsets: list[int], skips: list[int], shares: list[float], size: int
) -> list[int]:
    free = -1
    slots = [free] * size
    count = len(owners)
    next_j = [0] * count
    targets = [0.0] * count
    max_share = max(shares)
    filled = 0
    iteration = 1
    while filled < size:
        for i in range(count):
            # A host whose share is 1/k of the largest takes a slot every k-th round.
            if iteration * shares[i] < targets[i]:
                continue
            targets[i] += max_share
            offset, skip, j = offsets[i], skips[i], next_j[i]
            slot = (offset + skip * j) % size
            while slots[slot] != free:
                j += 1
                slot = (offset + skip * j) % size
            slots[slot] = owners[i]
            next_j[i] = j + 1
            filled += 1
            if filled == size:
                break
        iteration += 1
    return slots


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    factor = 3
    while factor * factor <= n:
        if n % factor == 0:
            return False
        factor += 2
    return True
