"""Control path: small Istio messages shared by several kinds (ports, percents, matches)."""

from __future__ import annotations

from pydantic import Field, model_validator

from gateway_core.config._base import ApiModel


class PortSelector(ApiModel):
    """Istio ``PortSelector``: ``{number: 9080}``."""

    number: int = Field(ge=0, le=65535)


class Percent(ApiModel):
    """Istio ``Percent``: ``{value: 12.5}`` (0..100)."""

    value: float = Field(ge=0.0, le=100.0)


class StringMatch(ApiModel):
    """Istio ``StringMatch``: exactly one of ``exact``, ``prefix`` or ``regex``.

    An empty ``{}`` is allowed in header and query matches, where it means "present".
    """

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> StringMatch:
        set_fields = [n for n in ("exact", "prefix", "regex") if getattr(self, n) is not None]
        if len(set_fields) > 1:
            raise ValueError(f"only one of exact, prefix or regex may be set (got {set_fields})")
        return self

    @property
    def is_empty(self) -> bool:
        return self.exact is None and self.prefix is None and self.regex is None


class ObjectMeta(ApiModel):
    """The parts of Kubernetes ``metadata`` a config file may carry.

    Only ``name`` and ``namespace`` have meaning here; the other Kubernetes fields are accepted
    so that YAML exported with ``kubectl get -o yaml`` loads unchanged.
    """

    name: str = Field(min_length=1)
    namespace: str = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    generate_name: str | None = None
    managed_fields: list[dict[str, object]] | None = None
    finalizers: list[str] | None = None
    owner_references: list[dict[str, object]] | None = None
