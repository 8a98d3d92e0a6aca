"""The TOML config: every key of SPEC with its default, validated up front.

A bad value stops the bot with one line that names the key, the value and what is allowed
(`replicate.wait_seconds: 90 is above 60`), never with a traceback. Secrets may come from the
environment, which wins over the file, and are masked whenever the config is shown.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.config_base import Section, http_url
from bot.config_errors import error_lines
from bot.config_replicate import ReplicateSettings, TrainingSettings, UpscaleSettings
from bot.errors import OptionError
from bot.lora import check_lora_ref
from bot.model import ASPECT_RATIOS

DEFAULT_PATH = "config.toml"
ENV_PATH = "FLUX_BOT_CONFIG"
SECRET_ENV = {
    ("discord", "token"): "DISCORD_TOKEN",
    ("replicate", "api_token"): "REPLICATE_API_TOKEN",
    ("replicate", "webhook_secret"): "REPLICATE_WEBHOOK_SECRET",
}
# settings the environment may give too (a container's health address, say), winning as well
PLAIN_ENV = {("http", "listen"): "FLUX_BOT_HTTP_LISTEN", ("storage", "database"): "DATABASE_URL",
             ("discord", "shard_count"): "FLUX_BOT_SHARD_COUNT",  # one config, N processes
             ("discord", "shard_ids"): "FLUX_BOT_SHARD_IDS"}
MASK = "********"

Snowflake = Annotated[int, Field(ge=0, le=2**63 - 1)]
AspectRatio = Literal[tuple(ASPECT_RATIOS)]  # type: ignore[valid-type]
OutputFormat = Literal["webp", "jpg", "png"]


def masked_url(url: str) -> str:
    """A database URL with its password shown as `********`, for output and logs."""
    password = urlsplit(url).password if "://" in url else None
    return url.replace(f":{password}@", f":{MASK}@", 1) if password else url


class ConfigError(Exception):
    """The config cannot be used; `lines` say why, one bad key per line."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class DiscordSettings(Section):
    token: SecretStr = SecretStr("")
    guild_ids: list[Snowflake] = []
    sync_commands: bool = False
    moderator_role_ids: list[Snowflake] = []
    allowed_channel_ids: list[Snowflake] = []
    mod_log_channel_id: Snowflake = 0
    allow_dms: bool = False
    default_locale: Literal["en-US", "zh-CN"] = "en-US"
    api_base: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg"
    shard_count: Annotated[int, Field(ge=0, le=100_000)] | Literal["auto"] = 0
    shard_ids: list[Annotated[int, Field(ge=0)]] = []

    @field_validator("shard_count", mode="before")
    @classmethod
    def _shard_count(cls, v: Any) -> Any:
        """A number, or "auto"; from the environment, "2" is a number."""
        if v == "auto":
            return v
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 100_000:
            return v
        raise ValueError(f"{json.dumps(v)} is neither a number of shards (0 to 100000) nor "
                         "\"auto\"")

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _shard_list(cls, v: Any) -> Any:
        """From the environment: "0,1" (or "0 1")."""
        if isinstance(v, str):
            try:
                return [int(part) for part in v.replace(",", " ").split()]
            except ValueError:
                raise ValueError(f"{json.dumps(v)} is not a list of shard numbers such as "
                                 "\"0,1\"") from None
        return v

    @model_validator(mode="after")
    def _shards(self) -> DiscordSettings:
        if self.shard_ids:
            if not isinstance(self.shard_count, int) or self.shard_count == 0:
                raise ValueError("shard_ids needs shard_count, the number of shards in all "
                                 "(not 0 nor \"auto\")")
            if len(set(self.shard_ids)) != len(self.shard_ids) or \
                    max(self.shard_ids) >= self.shard_count:
                raise ValueError(f"shard_ids {self.shard_ids} must be distinct, each below "
                                 f"shard_count ({self.shard_count})")
        return self

    def shards(self) -> tuple[int, ...] | None:
        """The shards this process runs out of `shard_count`; None: every shard (one process
        for the whole bot, sharded or not)."""
        if not self.shard_ids:
            return None
        return tuple(sorted(self.shard_ids))

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, v: str) -> str:
        return http_url(v, ("https", "http"))

    @field_validator("gateway_url")
    @classmethod
    def _gateway(cls, v: str) -> str:
        return http_url(v, ("wss", "ws"))


class DefaultsSettings(Section):
    aspect_ratio: AspectRatio = "1:1"
    num_outputs: int = Field(1, ge=1, le=4)
    output_format: OutputFormat = "webp"
    output_quality: int = Field(80, ge=0, le=100)
    guidance: float = Field(3.5, ge=0, le=10)
    steps: int = Field(28, ge=1, le=50)
    lora_scale: float = Field(0.8, ge=0, le=1)
    prompt_strength: float = Field(0.8, ge=0, le=1)


class LimitsSettings(Section):
    max_prompt_length: int = Field(1000, ge=1, le=6000)
    max_num_outputs: int = Field(4, ge=1, le=4)
    max_steps: int = Field(50, ge=1, le=50)
    allow_img2img: bool = True
    allow_custom_lora: bool = True
    banned_words: list[Annotated[str, Field(min_length=1)]] = []
    disable_safety_checker: bool = False


class RoleQuota(Section):
    role_id: Annotated[int, Field(ge=1, le=2**63 - 1)]
    daily: int | None = Field(None, ge=0)
    weekly: int | None = Field(None, ge=0)
    monthly: int | None = Field(None, ge=0)


class QuotaSettings(Section):
    daily: int = Field(20, ge=0)
    weekly: int = Field(0, ge=0)
    monthly: int = Field(0, ge=0)
    timezone: str = "UTC"
    per_user_concurrent: int = Field(2, ge=0)
    cooldown_seconds: int = Field(0, ge=0)
    guild_daily: int = Field(0, ge=0)
    roles: list[RoleQuota] = []

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{json.dumps(v)} is not a time zone (e.g. \"Asia/Shanghai\")")\
                from None
        return v


class BudgetSettings(Section):
    """Money, in US dollars: a monthly budget per server (a moderator may set another for
    theirs), a daily cap for the whole bot, when to warn, and whether to refuse or only warn."""

    monthly_usd: float = Field(0.0, ge=0, le=1_000_000)
    daily_usd_total: float = Field(0.0, ge=0, le=1_000_000)
    warn_at: float = Field(0.8, gt=0, le=1)
    mode: Literal["block", "warn"] = "block"


class LoraEntry(Section):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    ref: str
    trigger: str = ""
    scale: float | None = Field(None, ge=0, le=1)
    description: str = Field("", max_length=500)

    @field_validator("ref")
    @classmethod
    def _ref(cls, v: str) -> str:
        try:
            return check_lora_ref(v)
        except OptionError:
            raise ValueError(f"{json.dumps(v[:80])} is not a LoRA reference the model "
                             "accepts (owner/name, a huggingface.co URL, a Replicate "
                             "trained_model.tar, a CivitAI download or a .safetensors URL)"
                             ) from None


class StorageSettings(Section):
    database: Annotated[str, Field(min_length=1)] = "data/bot.db"

    @field_validator("database")
    @classmethod
    def _database(cls, v: str) -> str:
        if "://" in v and not re.fullmatch(r"postgres(ql)?://[^\s/]+(/[^\s?]*)?(\?\S*)?", v):
            raise ValueError("a URL must be postgresql://user[:password]@host[:port]/database "
                             "(a path means an SQLite file)")
        return v


class HttpSettings(Section):
    listen: str = ""

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        if (v and not re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[\w.-]+):(\d{1,5})", v)) or \
                (v and not 0 <= int(v.rsplit(":", 1)[1]) < 65536):
            raise ValueError(f"{json.dumps(v)} is not host:port (e.g. \"127.0.0.1:8080\")")
        return v


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["text", "json"] = "text"


class Config(Section):
    discord: DiscordSettings = DiscordSettings()
    replicate: ReplicateSettings = ReplicateSettings()
    upscale: UpscaleSettings = UpscaleSettings()
    training: TrainingSettings = TrainingSettings()
    defaults: DefaultsSettings = DefaultsSettings()
    limits: LimitsSettings = LimitsSettings()
    quota: QuotaSettings = QuotaSettings()
    budget: BudgetSettings = BudgetSettings()
    loras: list[LoraEntry] = []
    storage: StorageSettings = StorageSettings()
    http: HttpSettings = HttpSettings()
    logging: LoggingSettings = LoggingSettings()

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        names = [entry.name.lower() for entry in self.loras]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"loras[{i}].name: {json.dumps(self.loras[i].name)} "
                                 "is listed twice")
        if self.defaults.num_outputs > self.limits.max_num_outputs:
            raise ValueError(f"defaults.num_outputs: {self.defaults.num_outputs} is above "
                             f"limits.max_num_outputs ({self.limits.max_num_outputs})")
        if self.upscale.scale > self.upscale.max_scale:
            raise ValueError(f"upscale.scale: {self.upscale.scale} is above "
                             f"upscale.max_scale ({self.upscale.max_scale})")
        t = self.training
        if t.enabled and not t.destination:
            raise ValueError("training.destination: needed when training.enabled = true (a "
                             "model of your Replicate account, \"owner/name\")")
        if t.default_steps > t.max_steps:
            raise ValueError(f"training.default_steps: {t.default_steps} is above "
                             f"training.max_steps ({t.max_steps})")
        if t.min_images > t.max_images:
            raise ValueError(f"training.min_images: {t.min_images} is above "
                             f"training.max_images ({t.max_images})")
        if self.replicate.webhook_url and not self.http.listen:
            raise ValueError("replicate.webhook_url: needs http.listen, the address whose "
                             "/replicate/webhook it reaches (e.g. \"0.0.0.0:8080\")")
        if self.defaults.steps > self.limits.max_steps:
            raise ValueError(f"defaults.steps: {self.defaults.steps} is above "
                             f"limits.max_steps ({self.limits.max_steps})")
        return self

    def secrets(self) -> list[str]:
        """The secret values in force, for log redaction (a database password included)."""
        password = urlsplit(self.storage.database).password \
            if "://" in self.storage.database else None
        return [s for s in (self.discord.token.get_secret_value(),
                            self.replicate.api_token.get_secret_value(),
                            self.replicate.webhook_secret.get_secret_value(), password) if s]

    def require(self, *keys: str) -> None:
        """Raise `ConfigError` when any of the secrets `keys` (`discord.token`, …) is empty."""
        lines = []
        for key in keys:
            section, name = key.split(".")
            if not getattr(getattr(self, section), name).get_secret_value():
                env = SECRET_ENV[(section, name)]
                lines.append(f"{key}: missing; set ${env} or {key.split('.')[1]} under "
                             f"[{section}] in the config file")
        if lines:
            raise ConfigError(lines)

    def masked(self) -> dict[str, Any]:
        """The resolved config as plain data, secrets shown as `********` when set."""
        data = self.model_dump(mode="python")
        for (section, name) in SECRET_ENV:
            value = getattr(getattr(self, section), name).get_secret_value()
            data[section][name] = MASK if value else ""
        for section in data.values():
            if isinstance(section, dict):
                for key in [k for k, v in section.items() if v is None]:
                    del section[key]
        data["quota"]["roles"] = [{k: v for k, v in r.items() if v is not None}
                                  for r in data["quota"]["roles"]]
        data["loras"] = [{k: v for k, v in e.items() if v is not None} for e in data["loras"]]
        data["storage"]["database"] = masked_url(self.storage.database)
        return data

    def masked_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.masked())


# -- loading ------------------------------------------------------------------------------

def parse_config(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Validate `data` (a parsed TOML document) with secrets from `env` winning."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    env = os.environ if env is None else env
    for (section, name), variable in {**SECRET_ENV, **PLAIN_ENV}.items():
        if env.get(variable):
            table = data.setdefault(section, {})
            if isinstance(table, dict):
                table[name] = env[variable]
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(error_lines(exc, Config)) from None


def default_path(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get(ENV_PATH) or DEFAULT_PATH


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None,
                *, missing_ok: bool = False) -> Config:
    """Read and validate the config file at `path` (default: `$FLUX_BOT_CONFIG` or
    `config.toml`). A missing file is an error unless `missing_ok`, when defaults apply."""
    path = Path(path or default_path(env))
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        if not missing_ok:
            raise ConfigError([f"{path}: file not found (copy config.example.toml)"]) from None
        data = {}
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a folder, not a file"]) from None
    except PermissionError:
        raise ConfigError([f"{path}: not readable (permission denied)"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    return parse_config(data, env)
