"""Shared data-path memo: values are always right; memory stays within both bounds."""

from __future__ import annotations

from gateway_core.utils.memo import BoundedMemo


def test_values_are_computed_once_and_remembered() -> None:
    """A repeated key is computed once; ``None`` results are remembered like any other."""
    calls: list[bytes] = []

    def compute(key: bytes) -> bytes | None:
        calls.append(key)
        return None if key == b"none" else key.upper()

    memo: BoundedMemo[bytes, bytes | None] = BoundedMemo(compute)
    assert [memo[b"a"], memo[b"a"], memo[b"none"], memo[b"none"]] == [b"A", b"A", None, None]
    assert calls == [b"a", b"none"]


def test_entries_are_bounded() -> None:
    """When full, the memo starts over instead of growing; results stay correct."""
    memo: BoundedMemo[str, str] = BoundedMemo(str.upper, entries=3)
    values = [memo[k] for k in ("a", "b", "c", "d", "e")]
    assert values == ["A", "B", "C", "D", "E"]
    assert len(memo) <= 3
    assert memo["d"] == "D"


def test_long_keys_are_computed_but_never_kept() -> None:
    """Keys longer than ``max_key`` (clients choose them) are answered and not stored."""
    calls: list[str] = []

    def compute(key: str) -> int:
        calls.append(key)
        return len(key)

    memo: BoundedMemo[str, int] = BoundedMemo(compute, max_key=4)
    assert [memo["abcd"], memo["abcd"], memo["abcde"], memo["abcde"]] == [4, 4, 5, 5]
    assert calls == ["abcd", "abcde", "abcde"]
    assert dict(memo) == {"abcd": 4}
