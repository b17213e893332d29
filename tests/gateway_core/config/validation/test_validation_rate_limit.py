"""LocalRateLimit (extension kind) rules: token bucket values, descriptor, target VirtualService
and route, each reported with its file, document and field path."""

from __future__ import annotations

import pytest
from validation_testkit import (
    ERROR,
    WARNING,
    Expected,
    assert_diagnostics,
    doc,
    join,
    validate_text,
    vs,
)

from gateway_core.config.loader import load_text

API = "gateway.multicluster.dev/v1alpha1"
BUCKET = "tokenBucket: {maxTokens: 10, tokensPerFill: 5, fillInterval: 1s}"
VS = vs(
    "{name: api, match: [{uri: {prefix: /api}}], route: [{destination: {host: a.example.com}}]}",
    "{route: [{destination: {host: b.example.com}}]}",
)


def limit(spec: str, *others: str) -> str:
    return join(*others, doc("LocalRateLimit", spec, name="rl", api=API))


CASES: list[tuple[str, str, list[Expected]]] = [
    ("gateway-wide", limit(BUCKET), []),
    ("per-ip", limit(f"{BUCKET}\ndescriptor: {{remoteAddress: {{}}}}\nmaxKeys: 100"), []),
    ("per-header", limit(f"{BUCKET}\ndescriptor: {{requestHeader: {{name: x-api-key}}}}"), []),
    ("per-claim", limit(f"{BUCKET}\ndescriptor: {{claim: {{name: org.id}}}}"), []),
    ("virtual-service", limit(f"virtualService: vs\n{BUCKET}", VS), []),
    ("named-route", limit(f"virtualService: default/vs\nroute: api\n{BUCKET}", VS), []),
    (
        "short-interval",
        limit("tokenBucket: {maxTokens: 1, fillInterval: 10ms}"),
        [(ERROR, "spec.tokenBucket.fillInterval", "fillInterval 0.01s is shorter than 0.05s")],
    ),
    (
        "sub-millisecond-interval",
        limit("tokenBucket: {maxTokens: 1, fillInterval: 1500us}"),
        [(ERROR, "spec.tokenBucket.fillInterval", "only durations to ms precision")],
    ),
    (
        "fill-above-max",
        limit("tokenBucket: {maxTokens: 1, tokensPerFill: 5, fillInterval: 1s}"),
        [(WARNING, "spec.tokenBucket.tokensPerFill", "larger than maxTokens")],
    ),
    (
        "two-sources",
        limit(f"{BUCKET}\ndescriptor: {{remoteAddress: {{}}, claim: {{name: sub}}}}"),
        [(ERROR, "spec.descriptor", "exactly one of remoteAddress, requestHeader or claim")],
    ),
    (
        "no-source",
        limit(f"{BUCKET}\ndescriptor: {{}}"),
        [(ERROR, "spec.descriptor", "exactly one of remoteAddress, requestHeader or claim")],
    ),
    (
        "bad-header",
        limit(f"{BUCKET}\ndescriptor: {{requestHeader: {{name: X-Key}}}}"),
        [(ERROR, "spec.descriptor.requestHeader.name", "must be lowercase")],
    ),
    (
        "pseudo-header",
        limit(f"{BUCKET}\ndescriptor: {{requestHeader: {{name: ':authority'}}}}"),
        [(ERROR, "spec.descriptor.requestHeader.name", "pseudo-header :authority")],
    ),
    (
        "bad-claim",
        limit(f"{BUCKET}\ndescriptor: {{claim: {{name: 'a..b'}}}}"),
        [(ERROR, "spec.descriptor.claim.name", "has an empty part")],
    ),
    (
        "max-keys-without-descriptor",
        limit(f"{BUCKET}\nmaxKeys: 5"),
        [(WARNING, "spec.maxKeys", "no effect without a descriptor")],
    ),
    (
        "route-without-virtual-service",
        limit(f"route: api\n{BUCKET}"),
        [(ERROR, "spec.route", "route needs virtualService")],
    ),
    (
        "unknown-virtual-service",
        limit(f"virtualService: other/vs\n{BUCKET}", VS),
        [(ERROR, "spec.virtualService", "VirtualService other/vs not found")],
    ),
    (
        "unknown-route",
        limit(f"virtualService: vs\nroute: nope\n{BUCKET}", VS),
        [(ERROR, "spec.route", "has no http route named 'nope'")],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_local_rate_limit(text: str, expected: list[Expected]) -> None:
    assert_diagnostics(validate_text(text), expected)


def test_diagnostics_name_file_document_resource_and_field() -> None:
    text = limit(f"virtualService: vs\nroute: nope\n{BUCKET}", VS)
    [diag] = validate_text(text).errors
    assert str(diag).startswith("case.yaml:1: LocalRateLimit/default/rl: spec.route: ")


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        ("tokenBucket: {maxTokens: 0, fillInterval: 1s}", "spec.tokenBucket.maxTokens", ">= 1"),
        (
            "tokenBucket: {maxTokens: 1, tokensPerFill: 0, fillInterval: 1s}",
            "spec.tokenBucket.tokensPerFill",
            ">= 1",
        ),
        ("tokenBucket: {maxTokens: 1}", "spec.tokenBucket.fillInterval", "required field"),
        (
            "tokenBucket: {maxTokens: 1, fillInterval: 1}",
            "spec.tokenBucket.fillInterval",
            "duration must be a string",
        ),
        ("maxKeys: 5", "spec.tokenBucket", "required field"),
        (f"{BUCKET}\nmaxKeys: 0", "spec.maxKeys", ">= 1"),
        (f"{BUCKET}\nburst: 5", "spec.burst", "unknown field"),
        (
            f"{BUCKET}\ndescriptor: {{requestHeader: {{}}}}",
            "spec.descriptor.requestHeader.name",
            "required field",
        ),
    ],
)
def test_structure_errors(spec: str, path: str, message: str) -> None:
    loaded = load_text(limit(spec), name="rl.yaml")
    errors = [d for d in loaded.diagnostics.errors if d.path == path]
    assert errors, [str(d) for d in loaded.diagnostics]
    assert message in errors[0].message.replace("greater than or equal to", ">=")
    assert str(errors[0]).startswith(f"rl.yaml:0: LocalRateLimit/default/rl: {path}: ")
