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


def _refuse(ref: str) -> OptionError:
    shown = (ref if len(ref) <= 80 else ref[:77] + "…").replace("`", "ˋ")
    return OptionError("lora.invalid", ref=shown, forms="\n".join(f"• `{f}`" for f in FORMS))


def _public_host(host: str | None) -> bool:
    if not host or host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." in host
    return address.is_global


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
        or not _public_host(url.hostname)
        or "/../" in f"{url.path}/"
        or "/./" in f"{url.path}/"
    ):
        raise _refuse(ref)
    host = url.hostname or ""
    if REPLICATE_TAR.match(ref) or CIVITAI.match(ref):
        return ref
    if host == "huggingface.co" and len([p for p in url.path.split("/") if p]) >= 2:
        return ref
    if ref.endswith(".safetensors"):
        return ref
    raise _refuse(ref)
