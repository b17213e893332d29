"""Istio's own sample and task YAML loads and validates without errors.

Files are loaded one at a time. VirtualServices that name subsets defined in another file are
validated together with that file's DestinationRules, as the Istio tasks apply them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gateway_core.config.destination_rule import DestinationRuleSpec
from gateway_core.config.diagnostics import Diagnostics, Severity
from gateway_core.config.loader import load_resources
from gateway_core.config.resources import Resource
from gateway_core.config.validation import validate_resources
from tests.helpers import SHARED, shared_path

SAMPLES = SHARED / "istio-samples"
COMPANIONS = (
    SAMPLES / "samples/bookinfo/networking/destination-rule-all.yaml",
    SAMPLES / "tasks/mirroring-default-routing.yaml",
)
FILES = sorted(SAMPLES.rglob("*.yaml")) if SAMPLES.is_dir() else []
BOOKINFO = "istio-samples/samples/bookinfo/networking"
ABSENT = f"{SAMPLES} is absent (reference material lives in ../shared beside the checkout)"


def _companion_rules() -> tuple[Resource[DestinationRuleSpec], ...]:
    rules: list[Resource[DestinationRuleSpec]] = []
    for path in COMPANIONS:
        rules.extend(load_resources([path]).resources.destination_rules)
    return tuple(rules)


def _validate_file(path: Path) -> Diagnostics:
    loaded = load_resources([path])
    resources = loaded.resources
    own = {r.ref for r in resources.all()}
    extra = tuple(r for r in _companion_rules() if r.ref not in own)
    resources = dataclasses.replace(
        resources, destination_rules=resources.destination_rules + extra
    )
    diags = Diagnostics()
    diags.extend(loaded.diagnostics)
    validate_resources(resources, diags)
    return diags


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, id=str(p.relative_to(SAMPLES))) for p in FILES]
    or [pytest.param(None, id="absent", marks=pytest.mark.skip(reason=ABSENT))],
)
def test_istio_sample_has_no_errors(path: Path) -> None:
    """An Istio sample produces no errors (warnings, e.g. for ISTIO_MUTUAL, are allowed)."""
    diags = _validate_file(path)
    assert [str(d) for d in diags.errors] == []


def test_samples_folder_present() -> None:
    """The sample folder is there, or the sample tests are skipped with a reason."""
    if not FILES:
        pytest.skip(ABSENT)
    assert len(FILES) >= 30


def test_istio_mutual_sample_warns_once_per_rule() -> None:
    """destination-rule-all-mtls.yaml warns (not errors) that ISTIO_MUTUAL becomes plaintext."""
    path = shared_path(f"{BOOKINFO}/destination-rule-all-mtls.yaml")
    diags = _validate_file(path)
    assert [(d.severity, d.ref, d.path) for d in diags] == [
        (Severity.WARNING, f"DestinationRule/default/{name}", "spec.trafficPolicy.tls.mode")
        for name in ("productpage", "reviews", "ratings", "details")
    ]


def test_bookinfo_subsets_need_their_destination_rules() -> None:
    """Without destination-rule-all.yaml the bookinfo subset references are reported."""
    path = shared_path(f"{BOOKINFO}/virtual-service-reviews-80-20.yaml")
    diags = Diagnostics()
    validate_resources(load_resources([path]).resources, diags)
    assert [(d.path, d.message) for d in diags.errors] == [
        (
            f"spec.http[0].route[{i}].destination.subset",
            "no DestinationRule defines subsets for host reviews.default.svc.cluster.local",
        )
        for i in (0, 1)
    ]
