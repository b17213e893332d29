"""Control path: diagnostics (errors and warnings) with their location in the config files.

Every message renders as ``file:document-index: kind/namespace/name: field.path: message``,
e.g. ``vs.yaml:1: VirtualService/default/bookinfo: spec.http[0].route[0].weight: weight -1 < 0``.
Document indexes count from 0, the first YAML document of a file being 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a document came from: file path and 0-based document index."""

    file: str
    index: int

    def __str__(self) -> str:
        return f"{self.file}:{self.index}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    message: str
    origin: Origin | None = None
    ref: str | None = None
    path: str | None = None

    def __str__(self) -> str:
        parts = [str(p) for p in (self.origin, self.ref, self.path) if p]
        prefix = ": ".join(parts)
        label = "" if self.severity is Severity.ERROR else "warning: "
        return f"{prefix}: {label}{self.message}" if prefix else f"{label}{self.message}"


@dataclass(slots=True)
class Diagnostics:
    """An accumulating list: validation reports every problem, not only the first."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(
        self,
        message: str,
        *,
        origin: Origin | None = None,
        ref: str | None = None,
        path: str | None = None,
    ) -> None:
        self.items.append(Diagnostic(Severity.ERROR, message, origin, ref, path))

    def warning(
        self,
        message: str,
        *,
        origin: Origin | None = None,
        ref: str | None = None,
        path: str | None = None,
    ) -> None:
        self.items.append(Diagnostic(Severity.WARNING, message, origin, ref, path))

    def extend(self, other: Iterable[Diagnostic]) -> None:
        self.items.extend(other)

    @property
    def errors(self) -> Sequence[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.ERROR]

    @property
    def warnings(self) -> Sequence[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class ConfigError(Exception):
    """Raised when a configuration is rejected; carries every diagnostic."""

    def __init__(self, diagnostics: Diagnostics) -> None:
        self.diagnostics = diagnostics
        lines = [str(d) for d in diagnostics.errors] or ["invalid configuration"]
        super().__init__("\n".join(lines))


def format_loc(loc: Sequence[int | str]) -> str:
    """A pydantic error location as a field path: ('spec', 'http', 0) -> spec.http[0]."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = str(part)
    return out
