"""The Replicate side of the config: the account and the image model (`[replicate]`), and the
upscaler (`[upscale]`), each a model version with its own price."""

from __future__ import annotations

import json
import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from bot.config_base import Section, http_url
from bot.replicate.webhooks import signing_key

DEFAULT_UPSCALER = "nightmareai/real-esrgan"
DEFAULT_UPSCALER_VERSION = "f121d640bd286e1fdc67f9799164c1d5be36ff74576ee11c803ae5b665dd46aa"


def _model_name(v: str) -> str:
    if not re.fullmatch(r"[a-zA-Z0-9_.-]+/[a-zA-Z0-9_.-]+", v):
        raise ValueError(f"{json.dumps(v)} is not of the form owner/name")
    return v


def _version_id(v: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", v):
        raise ValueError(f"{json.dumps(v)} is not a 64-character hex version id")
    return v


class ReplicateSettings(Section):
    api_token: SecretStr = SecretStr("")
    api_base: str = "https://api.replicate.com/v1"
    model: str = "lucataco/flux-dev-lora"
    version: str = "091495765fa5ef2725a175a57b276ec30dc9d39c22d30410f2ede68a3eab66b3"
    wait_seconds: int = Field(60, ge=0, le=60)
    timeout_seconds: int = Field(600, ge=5, le=86400)
    max_concurrent: int = Field(8, ge=1, le=1000)
    cost_per_second: float = Field(0.0014, ge=0)
    creates_per_minute: int = Field(600, ge=0, le=100_000)
    calls_per_minute: int = Field(3000, ge=0, le=1_000_000)
    webhook_url: str = ""
    webhook_secret: SecretStr = SecretStr("")
    reconcile_seconds: int = Field(30, ge=1, le=3600)

    @property
    def version_ref(self) -> str:
        return f"{self.model}:{self.version}"

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, v: str) -> str:
        """Replicate posts only to https; plain http is let through for a loopback address
        (a local relay, the tests)."""
        if not v:
            return v
        url = http_url(v, ("https", "http"))
        parts = urlsplit(url)
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"{json.dumps(v)} must be https (Replicate posts only to https)")
        return url

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, v: SecretStr) -> SecretStr:
        if v.get_secret_value():
            try:
                signing_key(v.get_secret_value())
            except ValueError as exc:
                raise ValueError(f"is not a webhook signing secret: it {exc}") from None
        return v

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, v: str) -> str:
        return http_url(v, ("https", "http"))

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        return _model_name(v)

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        return _version_id(v)


class UpscaleSettings(Section):
    """The upscaler behind the U buttons and the "Upscale" app command: its own model version
    and price; a member's upscale costs `credits` and is counted in the budget at its price.
    Another upscaler must take the same inputs (`image`, `scale`, `face_enhance`)."""

    enabled: bool = True
    model: str = DEFAULT_UPSCALER
    version: str = DEFAULT_UPSCALER_VERSION
    scale: int = Field(2, ge=1, le=10)
    max_scale: int = Field(4, ge=1, le=10)
    face_enhance: bool = False
    credits: int = Field(1, ge=0, le=1000)
    cost_per_second: float = Field(0.000225, ge=0)

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        return _model_name(v)

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        return _version_id(v)

    @property
    def version_ref(self) -> str:
        return f"{self.model}:{self.version}"


DEFAULT_TRAINER = "ostris/flux-dev-lora-trainer"
DEFAULT_TRAINER_VERSION = "26dce37af90b9d997eeb970d92e47de3064d46c300504ae376c75bef6a9022d2"


class TrainingSettings(Section):
    """`/lora train`: a Flux LoRA trained on Replicate from a member's zip of images, into
    `destination` (a model of the account, which must exist), then into the server's
    catalogue. Costs `credits` from the member's quota and the budget at `cost_per_second`."""

    enabled: bool = False
    model: str = DEFAULT_TRAINER
    version: str = DEFAULT_TRAINER_VERSION
    destination: str = ""
    allowed_role_ids: list[Annotated[int, Field(ge=0, le=2**63 - 1)]] = Field(
        default_factory=list)
    credits: int = Field(20, ge=0, le=100_000)
    default_steps: int = Field(1000, ge=3, le=6000)
    max_steps: int = Field(2000, ge=3, le=6000)
    min_images: int = Field(5, ge=1, le=1000)
    max_images: int = Field(100, ge=1, le=1000)
    timeout_seconds: int = Field(7200, ge=60, le=86400)
    cost_per_second: float = Field(0.001525, ge=0)

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        return _model_name(v)

    @field_validator("destination")
    @classmethod
    def _destination(cls, v: str) -> str:
        return _model_name(v) if v else v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        return _version_id(v)

    @property
    def version_ref(self) -> str:
        return f"{self.model}:{self.version}"
