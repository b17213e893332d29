"""Observability: one ``/stats/prometheus`` for a supervisor and its workers.

Every process keeps its own registry (the gateway's collectors need no shared memory, so
prometheus-client's multiprocess mode, which only knows its own metric classes, does not fit).
When the supervisor is scraped it asks each worker for ``registry.collect()`` and merges the
families here, generically, by type -- nothing in this module knows a metric by name:

* counters, histograms and summaries (their ``_total``, ``_bucket``, ``_count``, ``_sum``
  samples) are **added** over the supervisor and every worker, and a worker that exited keeps
  what it had counted at the last scrape (``Retired``), so sums never go backwards;
  ``_created`` samples take the earliest value;
* gauges (and info, stateset, unknown) take the **supervisor's value when it is not 0** -- the
  state it decides: configuration version, draining, hosts, health, ejections -- **else the sum
  over the workers** -- per-connection state such as open connections and requests in flight,
  which is 0 in the supervisor because it serves no traffic (Envoy's gauges are likewise one
  value for all workers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

SampleKey = tuple[str, tuple[tuple[str, str], ...]]
WorkerFamilies = Callable[[], list[list[Metric]]]
ADDITIVE = frozenset({"counter", "histogram", "summary"})


def _key(sample: Sample) -> SampleKey:
    return sample.name, tuple(sorted(sample.labels.items()))


def _additive(family: Metric, sample: Sample) -> bool:
    return (
        family.type in ADDITIVE
        and not sample.name.endswith("_created")
        and "quantile" not in sample.labels
    )


def merge_families(own: Sequence[Metric], workers: Sequence[Sequence[Metric]]) -> list[Metric]:
    """The supervisor's families ``own`` merged with each worker's (see the module doc)."""
    order: list[str] = []
    templates: dict[str, Metric] = {}
    own_values: dict[str, dict[SampleKey, Sample]] = {}
    sums: dict[str, dict[SampleKey, Sample]] = {}
    for index, families in enumerate([own, *workers]):
        for family in families:
            if family.name not in templates:
                templates[family.name] = family
                order.append(family.name)
                sums[family.name] = {}
            if index == 0:
                own_values[family.name] = {_key(s): s for s in family.samples}
            _accumulate(family, sums[family.name])
    merged: list[Metric] = []
    for name in order:
        template = templates[name]
        out = Metric(template.name, template.documentation, template.type, template.unit)
        own_samples = own_values.get(name, {})
        for key, total in sums[name].items():
            mine = own_samples.get(key)
            if mine is not None and mine.value != 0 and not _additive(template, mine):
                out.samples.append(mine)
            else:
                out.samples.append(total)
        merged.append(out)
    return merged


def _accumulate(family: Metric, into: dict[SampleKey, Sample]) -> None:
    for sample in family.samples:
        key = _key(sample)
        seen = into.get(key)
        if seen is None:
            into[key] = sample
        elif sample.name.endswith("_created"):
            into[key] = sample._replace(value=min(seen.value, sample.value))
        else:
            into[key] = seen._replace(value=seen.value + sample.value)


class Retired:
    """The additive samples of workers that exited, summed (a restarted worker counts from 0,
    and the total over all workers must not drop)."""

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}
        self._samples: dict[str, dict[SampleKey, Sample]] = {}

    def add(self, families: Iterable[Metric]) -> None:
        for family in families:
            kept = [s for s in family.samples if _additive(family, s)]
            if not kept:
                continue
            if family.name not in self._families:
                self._families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
                self._samples[family.name] = {}
            part = Metric(family.name, family.documentation, family.type, family.unit)
            part.samples = kept
            _accumulate(part, self._samples[family.name])

    def families(self) -> list[Metric]:
        out = []
        for name, template in self._families.items():
            family = Metric(template.name, template.documentation, template.type, template.unit)
            family.samples = list(self._samples[name].values())
            out.append(family)
        return out


class MergedCollector(Collector):
    """Registered in the supervisor's admin registry: its own collectors (``own``) merged with
    the worker families that ``workers`` returns (refreshed before each scrape)."""

    def __init__(self, own: Collector, workers: WorkerFamilies) -> None:
        self._own = own
        self._workers = workers

    def collect(self) -> Iterable[Metric]:
        return merge_families(list(self._own.collect()), self._workers())
