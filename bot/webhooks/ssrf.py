"""The SSRF guard: webhooks never reach loopback, private, link-local or metadata addresses.

Checked at registration (an IP literal, or a name that resolves there, is refused; a name that
does not resolve is accepted and checked again at delivery) and at every delivery.
``SIGNBOT_WEBHOOK_ALLOW_PRIVATE=1`` lifts it. The bot's own ``{PUBLIC_URL}/hooks/`` path is
always allowed; nothing else under our own URL is.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from bot.errors import FieldError, ValidationFailed

REJECTED = "URL rejected: private or loopback address"
_EXTRA_BLOCKED = [
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("198.18.0.0/15"),  # benchmarking
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
]


def is_blocked(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            ip = embedded
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or any(ip in net for net in _EXTRA_BLOCKED)
    )


@dataclass(frozen=True)
class Policy:
    allow_private: bool
    own_public_url: str
    require_https: bool
    """Live-mode endpoints on public addresses must use https."""


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, lower-case host, port with the scheme's default filled in)."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    except ValueError:
        return None
    return parts.scheme, (parts.hostname or "").lower().rstrip("."), port


def _own_hooks(url: str, own: str) -> bool:
    """Whether ``url`` is the bot's own ``{PUBLIC_URL}/hooks/…`` route, compared part by part
    on the parsed URL: dot segments (``/hooks/../api``), encoded or not, never qualify."""
    target, base = urlsplit(url), urlsplit(own)
    same_origin = _origin(url) is not None and _origin(url) == _origin(own)
    path = unquote(target.path)
    if not same_origin or any(seg in (".", "..") for seg in path.split("/")) or "\\" in path:
        return False
    return path.startswith(base.path.rstrip("/") + "/hooks/")


def parse(url: str) -> tuple[str, str]:
    """(scheme, host) of an acceptable URL, or a validation error that says what is wrong."""
    if len(url) > 2048:
        raise ValidationFailed.field("url", "must be at most 2048 characters")
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        raise ValidationFailed.field("url", "is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed.field("url", "must be an http:// or https:// URL")
    if parts.username or parts.password:
        raise ValidationFailed.field("url", "must not carry credentials")
    return parts.scheme, parts.hostname


async def resolve(host: str) -> list[str] | None:
    """Addresses of ``host`` (None when it does not resolve)."""
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM), 5
        )
    except (OSError, TimeoutError, UnicodeError):
        return None
    return sorted({info[4][0] for info in infos})


def _refuse_own(url: str, policy: Policy) -> str | None:
    """Nothing under our own URL but the bot's ``/hooks/`` route (host compared parsed)."""
    if _own_hooks(url, policy.own_public_url):
        return None
    if _origin(url) == _origin(policy.own_public_url):
        return "URL rejected: only /hooks/ is allowed on signbot's own URL"
    return None


async def check_registration(url: str, policy: Policy) -> None:
    scheme, host = parse(url)
    if _own_hooks(url, policy.own_public_url):
        return
    own = _refuse_own(url, policy)
    if own is not None:
        raise ValidationFailed.field("url", own)
    if policy.allow_private:
        return
    addresses = [host] if _is_ip(host) else await resolve(host)
    if addresses and any(is_blocked(a) for a in addresses):
        raise ValidationFailed(REJECTED, [FieldError("url", REJECTED)])
    if policy.require_https and scheme != "https":
        raise ValidationFailed.field("url", "live webhooks must use https://")


@dataclass(frozen=True)
class Target:
    """Where a delivery connects: the address that passed the check, not a second lookup
    (a name answering public to the check and 127.0.0.1 to the connection gets nowhere)."""

    url: str
    headers: dict[str, str]
    """``Host``, when the URL names the checked IP instead of the host."""
    extensions: dict[str, str]
    """``sni_hostname`` for TLS, so the certificate is still checked against the name."""


async def delivery_target(url: str, policy: Policy) -> Target | str:
    """The target to connect to, or why a delivery to ``url`` must not be attempted now."""
    if _own_hooks(url, policy.own_public_url) or policy.allow_private:
        return Target(url, {}, {})
    own = _refuse_own(url, policy)
    if own is not None:
        return own
    try:
        scheme, host = parse(url)
    except ValidationFailed as exc:
        return exc.message
    if _is_ip(host):
        return REJECTED if is_blocked(host) else Target(url, {}, {})
    addresses = await resolve(host)
    if addresses is None:
        return f"could not resolve {host}"
    if any(is_blocked(a) for a in addresses):
        return REJECTED
    parts = urlsplit(url)
    ip = addresses[0]
    literal = f"[{ip}]" if ":" in ip else ip
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    pinned = parts._replace(netloc=netloc).geturl()
    extensions = {"sni_hostname": host} if scheme == "https" else {}
    return Target(pinned, {"Host": parts.netloc}, extensions)


async def check_delivery(url: str, policy: Policy) -> str | None:
    """Why a delivery to ``url`` must not be attempted now, or None when it may go."""
    target = await delivery_target(url, policy)
    return target if isinstance(target, str) else None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
