"""Control path: Istio host-name rules shared by validation and the compiler.

* Short names are relative to the namespace of the resource that uses them (Istio
  ``ResolveShortnameToFQDN``): ``reviews`` in namespace ``default`` is
  ``reviews.default.svc.cluster.local``; a name with a dot is already fully qualified.
* ``*.example.com`` matches ``a.example.com`` and ``a.b.example.com`` but not ``example.com``;
  ``*`` matches everything.
"""

from __future__ import annotations

import ipaddress
import re

DOMAIN_SUFFIX = "svc.cluster.local"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", re.IGNORECASE)


def fqdn(host: str, namespace: str) -> str:
    """Expand a short service name; wildcards and names with dots are returned lower-cased."""
    host = host.strip().lower()
    if host == "*" or "." in host or is_ip(host):
        return host
    return f"{host}.{namespace}.{DOMAIN_SUFFIX}"


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def is_dns_name(host: str, *, allow_wildcard: bool = True) -> bool:
    """RFC 1123 host name, optionally with a leading ``*.`` (or exactly ``*``)."""
    if allow_wildcard and host == "*":
        return True
    if allow_wildcard and host.startswith("*."):
        host = host[2:]
    if not host or len(host) > 253:
        return False
    return all(_DNS_LABEL.match(label) for label in host.rstrip(".").split("."))


def host_matches(pattern: str, host: str) -> bool:
    """Does ``pattern`` (possibly a wildcard) cover the concrete or wildcard ``host``?"""
    pattern = pattern.lower()
    host = host.lower()
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        suffix = pattern[1:]
        if host.startswith("*."):
            return host[1:].endswith(suffix)
        return host.endswith(suffix) and len(host) > len(suffix)
    return pattern == host


def hosts_intersect(a: str, b: str) -> bool:
    """True when some concrete host name is matched by both ``a`` and ``b``."""
    return host_matches(a, b) or host_matches(b, a)


def more_specific(a: str, b: str) -> str:
    """Of two intersecting hosts, the narrower one (what Istio uses as the vhost domain)."""
    return b if host_matches(a, b) else a


def split_server_host(host: str) -> tuple[str, str]:
    """``Server.hosts`` entries are ``[namespace/]dnsName``; the default namespace is ``*``."""
    if "/" in host:
        ns, _, name = host.partition("/")
        return ns, name
    return "*", host
