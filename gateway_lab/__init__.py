"""Control path (lab): the embedded multi-cluster lab — demo pods, loopback DNS and tooling.

Nothing in this package is imported by the gateways themselves; it provides the stand-ins for
Kubernetes workloads (bookinfo, helloworld, httpbin, echo) and cluster DNS used by the lab and by
functional tests.
"""
