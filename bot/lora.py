"""LoRA references: the five forms `lucataco/flux-dev-lora` accepts for `hf_lora`, checked
locally so that a typo is refused at once instead of failing on Replicate after the credits
were reserved.

We are stricter than the model where being loose would only hurt: URLs must be http(s) on a
public host name, without credentials, control characters or path tricks.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from bot.errors import OptionError

MAX_REF_LENGTH = 500

# The model's own patterns (predict.py), in its order.
HF_REPO = re.compile(r"[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+")
REPLICATE_TAR = re.compile(r"https?://replicate\.delivery/[\w-]+/[\w-]+/trained_model\.tar", re.A)
CIVITAI = re.compile(r"https?://civitai\.com/api/download/models/\d+\?type=Model&format=SafeTensor")

FORMS = (
    "owner/name",
    "https://huggingface.co/owner/name/resolve/main/file.safetensors",
    "https://replicate.delivery/…/…/trained_model.tar",
    "https://civitai.com/api/download/models/123456?type=Model&format=SafeTensor",
    "https://…/file.safetensors",
)

_UNSAFE_CHARS = re.compile(r"[\s\x00-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff\\]")


def _shown(ref: str) -> str:
    return (ref if len(ref) <= 80 else ref[:77] + "…").replace("`", "ˋ")


def _refuse(ref: str) -> OptionError:
    return OptionError("lora.invalid", ref=_shown(ref),
                       forms="\n".join(f"• `{f}`" for f in FORMS))


_PRIVATE_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".lan", ".intranet")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _number(part: str) -> int | None:
    """One part of a numeric host as resolvers read it: `0x` hex, a leading 0 octal."""
    try:
        if part[:2] in ("0x", "0X"):
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part, 8)
        return int(part, 10)
    except ValueError:
        return None


def ipv4_spelling(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a host spells in any of the forms `inet_aton` and browsers take
    (`127.1`, `0x7f.0.0.1`, `0177.0.0.1`, `2130706433`, `169.254.43518`), else None.
    Raises ValueError for a numeric host that is no valid address."""
    parts = host.split(".")
    if not parts[-1] or not re.fullmatch(r"(0[xX][0-9a-fA-F]*|[0-9]+)", parts[-1]):
        return None  # a name, not a number
    numbers = [_number(p) for p in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise ValueError(f"{host} is not an address")
    *leading, last = [n for n in numbers if n is not None]
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(parts)):
        raise ValueError(f"{host} is out of range")
    value = 0
    for n in leading:
        value = value * 256 + n
    return ipaddress.IPv4Address(value * 256 ** (5 - len(parts)) + last)


def public_host(host: str | None) -> bool:
    """Whether `host` names a public machine, read the way URL libraries and resolvers read
    it: IDNA (full-width digits and dots, `①②⑦`), a trailing dot, every IPv4 spelling, IPv6
    with an IPv4 inside. Loopback, private, link-local, reserved and local names are not."""
    if not host:
        return False
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return False
    host = host.removesuffix(".")
    if not re.fullmatch(r"[a-z0-9_.:-]+", host):
        return False  # %-escapes and the like: a URL library would decode them
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipv4_spelling(host)
        if address is None and ":" in host:
            address = ipaddress.IPv6Address(host)
    except ValueError:
        return False
    if address is None:
        return "." in host and host != "localhost" and not host.endswith(_PRIVATE_SUFFIXES)
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None)
        if inner is not None and not inner.is_global:
            return False
    return address.is_global and not address.is_multicast and not address.is_reserved


def check_lora_ref(ref: str) -> str:
    """Return `ref` stripped when the model would accept it and it is safe to send; else raise
    `OptionError("lora.invalid")` whose message lists the accepted forms."""
    ref = ref.strip()
    if not ref or len(ref) > MAX_REF_LENGTH or _UNSAFE_CHARS.search(ref):
        raise _refuse(ref[:MAX_REF_LENGTH])
    if HF_REPO.fullmatch(ref):
        return ref
    try:
        url = urlsplit(ref)
        port = url.port
    except ValueError as exc:
        raise _refuse(ref) from exc
    if (
        url.scheme not in ("http", "https")
        or url.username is not None
        or url.password is not None
        or port not in (None, 80, 443)
        or "/../" in f"{url.path}/"
        or "/./" in f"{url.path}/"
    ):
        raise _refuse(ref)
    if not public_host(url.hostname):
        raise OptionError("lora.private_host", ref=_shown(ref),
                          host=_shown(url.hostname or "")[:100])
    host = url.hostname or ""
    if REPLICATE_TAR.match(ref) or CIVITAI.match(ref):
        return ref
    if host == "huggingface.co" and len([p for p in url.path.split("/") if p]) >= 2:
        return ref
    if ref.endswith(".safetensors"):
        return ref
    raise _refuse(ref)
