"""The Colonies server's address: a checked host, a URL built from parts, and where the host is (pure: no I/O).

A host is a DNS name or an IP address and nothing else, so no path, query, user info or port can ride in it and
turn a signed request into one for another endpoint. The sync client and any other client build their URLs
with `server_url` alone.
"""

from __future__ import annotations

import ipaddress
import re

_LABEL = r"[A-Za-z0-9](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
MAX_HOST_LENGTH = 253
DEFAULT_CLUSTER_DOMAIN = "cluster.local"


class InvalidHost(ValueError):
    """The host is not a DNS name or an IP address; the message says what was wrong."""


def check_host(host: object) -> str:
    """The host as given if it is a DNS name or an IP address (IPv6 without brackets); raises InvalidHost."""
    if not isinstance(host, str) or not host:
        raise InvalidHost("the host must be a DNS name or an IP address, e.g. colonies.example.org or 10.0.0.5")
    shown = host[:80]
    if _ip(host) is not None:
        return host
    if len(host) > MAX_HOST_LENGTH or not _DNS_NAME.match(host):
        raise InvalidHost(f"{shown!r} is not a DNS name or an IP address: give the host alone, without scheme, "
                          "port, path or query (e.g. colonies.example.org, 10.0.0.5 or fd00::5)")
    return host


def server_url(host: str, port: int, tls: bool, path: str = "") -> str:
    """`http(s)://host:port` plus `path` (which must start with "/"), with IPv6 addresses in brackets."""
    check_host(host)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValueError(f"the port must be a TCP port (1-65535), not {port!r}")
    if path and not path.startswith("/"):
        raise ValueError(f"the path must start with '/', not {path!r}")
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}{path}"


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: traffic that never leaves the machine."""
    ip = _ip(host)
    if ip is not None:
        return ip.is_loopback
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def is_cluster_local(host: str, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> bool:
    """True for a Service's name as pods resolve it: one label (`colonies`, the pod's own namespace), or a name
    ending in `.svc` or `.svc.<cluster domain>`. Other names and all IP addresses may be outside the cluster."""
    if _ip(host) is not None:
        return False
    name = host.lower().rstrip(".")
    domain = cluster_domain.lower().strip(".")
    return "." not in name or name.endswith(".svc") or name.endswith(f".svc.{domain}")
