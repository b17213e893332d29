"""Control path: checks of one ``DestinationRule`` (Istio ``ValidateDestinationRule``)."""

from __future__ import annotations

from gateway_core.config.destination_rule import DestinationRuleSpec
from gateway_core.config.resources import Resource
from gateway_core.config.validation._common import (
    Reporter,
    export_to_errors,
    is_dns1123_label,
    labels_errors,
    quote,
    wildcard_domain_error,
)
from gateway_core.config.validation.traffic_policy import validate_traffic_policy


def validate_destination_rule(res: Resource[DestinationRuleSpec], rep: Reporter) -> None:
    spec = res.spec
    rep.error("spec.host", wildcard_domain_error(spec.host))
    if spec.traffic_policy is not None:
        validate_traffic_policy(spec.traffic_policy, "spec.trafficPolicy", rep)
    names: set[str] = set()
    for i, subset in enumerate(spec.subsets):
        path = f"spec.subsets[{i}]"
        if subset.name in names:
            rep.error(f"{path}.name", f"duplicate subset names: {subset.name}")
        names.add(subset.name)
        if not is_dns1123_label(subset.name):
            rep.error(f"{path}.name", f"subset name is invalid: {subset.name}")
        for message in labels_errors(subset.labels):
            rep.error(f"{path}.labels", message)
        if subset.traffic_policy is not None:
            validate_traffic_policy(subset.traffic_policy, f"{path}.trafficPolicy", rep)
    selector = spec.workload_selector
    for message in export_to_errors(res.namespace, spec.export_to, service_entry=False):
        rep.error("spec.exportTo", message)
    if selector is not None:
        _validate_selector(selector.match_labels, rep)
        if spec.export_to and spec.export_to not in ([res.namespace], ["."]):
            rep.error(
                "spec.exportTo",
                "destination rule with workload selector cannot have exportTo beyond current "
                "namespace",
            )


def _validate_selector(labels: dict[str, str], rep: Reporter) -> None:
    path = "spec.workloadSelector.matchLabels"
    if not labels:
        rep.warning(path, "workload selector specified without labels")
    for key, value in labels.items():
        pair = quote(f"{key}={value}")
        if not key:
            rep.error(path, f"empty key is not supported in selector: {pair}")
        if "*" in key or "*" in value:
            rep.error(path, f"wildcard is not supported in selector: {pair}")
