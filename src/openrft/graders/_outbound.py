"""Which URLs lambda, endpoint and judge graders may call (Decision 8).

Loopback and private addresses are allowed (a self-hosted reward server lives
there); link-local addresses, which include the cloud metadata service at
169.254.169.254, are refused. An operator's denylist refuses more, and an
allowlist, when set, is the only thing allowed (it may re-allow link-local).
Entries are host names or CIDRs.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from openrft.errors import InvalidRequest

from ._config import GraderSettings

__all__ = ["check_url"]

_ALWAYS_REFUSED_NAMES = frozenset({"metadata.google.internal", "metadata"})
_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def _addresses(host: str) -> list[_IP]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []  # unresolvable now: the call will fail and be reported then
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def _matches(host: str, addresses: list[_IP], entries: tuple[str, ...]) -> bool:
    for entry in entries:
        if entry.lower() == host:
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if any(address in network for address in addresses):
            return True
    return False


def check_url(url: str, settings: GraderSettings, *, param: str) -> None:
    """Raise InvalidRequest naming `param` unless `url` may be called."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"{url!r} is not an http(s) URL", param=param)
    host = parts.hostname.lower()
    addresses = _addresses(host)
    if _matches(host, addresses, settings.url_denylist):
        raise InvalidRequest(f"calls to {host} are refused by the server's denylist", param=param)
    if settings.url_allowlist:
        if not _matches(host, addresses, settings.url_allowlist):
            raise InvalidRequest(f"{host} is not in the server's allowlist", param=param)
        return
    if host in _ALWAYS_REFUSED_NAMES or any(a.is_link_local for a in addresses):
        raise InvalidRequest(
            f"calls to link-local or metadata address {host} are refused", param=param
        )
