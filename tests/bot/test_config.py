"""Config: defaults, one clear line per bad key, secrets from the environment, masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Config, ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def lines(data: dict, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, env or {})
    return caught.value.lines


def test_empty_config_has_every_default():
    config = parse_config({}, {})
    assert config.replicate.wait_seconds == 60
    assert config.replicate.api_base == "https://api.replicate.com/v1"
    assert config.quota.daily == 20 and config.quota.timezone == "UTC"
    assert config.defaults.aspect_ratio == "1:1" and config.limits.max_num_outputs == 4
    assert config.storage.database == "data/bot.db"


def test_example_config_is_valid_and_matches_the_defaults():
    config = load_config(EXAMPLE, {})
    defaults = Config()
    for section in ("replicate", "defaults", "limits", "storage", "http", "logging"):
        assert getattr(config, section) == getattr(defaults, section), section
    assert [e.name for e in config.loras] == ["frosting_lane"]


def test_example_config_documents_every_key():
    text = EXAMPLE.read_text()
    for section, model in Config.model_fields.items():
        annotation = model.annotation
        fields = getattr(annotation, "model_fields", None)
        if fields is None:
            continue
        assert f"[{section}]" in text, section
        for key in fields:
            assert f"\n{key} =" in text or f"\n# {key} =" in text or \
                f"\n# [[{section}.{key}]]" in text, f"{section}.{key}"


def commented_blocks(text: str) -> list[tuple[int, int]]:
    """(first, last) line numbers of each commented-out TOML block: `# [table]` or
    `# [[array]]` and the `# key = value` lines under it."""
    lines, blocks = text.splitlines(), []
    for i, line in enumerate(lines):
        if line.startswith("# [") and line.rstrip().endswith("]"):
            end = i
            while end + 1 < len(lines) and lines[end + 1].startswith("# ") and \
                    "=" in lines[end + 1].split("#")[1]:
                end += 1
            blocks.append((i, end))
    return blocks


def test_the_example_stays_valid_whatever_block_is_uncommented(tmp_path: Path):
    text = EXAMPLE.read_text()
    blocks = commented_blocks(text)
    assert blocks  # [[quota.roles]] at least
    for first, last in blocks:
        lines = text.splitlines()
        for n in range(first, last + 1):
            lines[n] = lines[n][2:]
        path = tmp_path / "config.toml"
        path.write_text("\n".join(lines) + "\n")
        config = load_config(path, {})  # raises ConfigError if it is not valid
        assert config.quota.roles or "roles" not in lines[first]


def test_an_unknown_key_suggests_the_one_meant():
    with pytest.raises(ConfigError) as caught:
        parse_config({"replicate": {"wait_secs": 5}, "quota": {"roles": [
            {"role_id": 1, "dialy": 3}]}}, {})
    assert caught.value.lines == [
        "replicate.wait_secs: unknown key (did you mean wait_seconds?)",
        "quota.roles[0].dialy: unknown key (did you mean daily?)"]


def test_the_health_address_may_come_from_the_environment():
    config = parse_config({"http": {"listen": ""}}, {"FLUX_BOT_HTTP_LISTEN": "0.0.0.0:8080"})
    assert config.http.listen == "0.0.0.0:8080"


@pytest.mark.parametrize(("data", "line"), [
    ({"replicate": {"wait_seconds": 90}}, "replicate.wait_seconds: 90 is above 60"),
    ({"replicate": {"timeout_seconds": 2}}, "replicate.timeout_seconds: 2 is below 5"),
    ({"replicate": {"max_concurrent": "8"}}, 'replicate.max_concurrent: "8" is not a whole'),
    ({"replicate": {"version": "abc"}}, 'replicate.version: "abc" is not a 64-character'),
    ({"replicate": {"api_base": "api.replicate.com"}}, "replicate.api_base: "),
    ({"defaults": {"aspect_ratio": "7:7"}}, 'defaults.aspect_ratio: "7:7" is not one of'),
    ({"defaults": {"guidance": 11}}, "defaults.guidance: 11 is above 10"),
    ({"defaults": {"num_outputs": 4}, "limits": {"max_num_outputs": 2}},
     "defaults.num_outputs: 4 is above limits.max_num_outputs (2)"),
    ({"limits": {"allow_img2img": "yes"}}, 'limits.allow_img2img: "yes" is not true or false'),
    ({"quota": {"timezone": "Mars/Olympus"}}, 'quota.timezone: "Mars/Olympus" is not a time'),
    ({"quota": {"daily": -1}}, "quota.daily: -1 is below 0"),
    ({"quota": {"roles": [{"role_id": 0, "daily": 100}]}}, "quota.roles[0].role_id: 0 is below 1"),
    ({"discord": {"default_locale": "fr"}}, 'discord.default_locale: "fr" is not one of'),
    ({"discord": {"guild_ids": [1, "two"]}}, 'discord.guild_ids[1]: "two" is not a whole'),
    ({"discord": {"gateway_url": "https://x"}}, 'discord.gateway_url: "https://x" is not a wss'),
    ({"discord": {"tokne": "x"}}, "discord.tokne: unknown key"),
    ({"replicat": {}}, "replicat: unknown key"),
    ({"loras": [{"name": "x", "ref": "javascript:alert(1)"}]}, "loras[0].ref: "),
    ({"loras": [{"name": "x", "ref": "a/b"}, {"name": "X", "ref": "c/d"}]},
     'loras[1].name: "X" is listed twice'),
    ({"http": {"listen": "8080"}}, 'http.listen: "8080" is not host:port'),
    ({"logging": {"level": "LOUD"}}, 'logging.level: "LOUD" is not one of'),
])
def test_a_bad_value_is_one_line_naming_the_key(data: dict, line: str):
    found = lines(data)
    assert any(text.startswith(line) for text in found), found


def test_several_bad_keys_are_all_told():
    found = lines({"replicate": {"wait_seconds": 90}, "quota": {"daily": -1}})
    assert found == ["replicate.wait_seconds: 90 is above 60", "quota.daily: -1 is below 0"]


def test_environment_secrets_win_over_the_file():
    config = parse_config({"discord": {"token": "from-file"}},
                          {"DISCORD_TOKEN": "from-env", "REPLICATE_API_TOKEN": "r8_env"})
    assert config.discord.token.get_secret_value() == "from-env"
    assert config.replicate.api_token.get_secret_value() == "r8_env"


def test_secrets_are_masked_when_shown():
    config = parse_config({"discord": {"token": "discord-secret"}},
                          {"REPLICATE_API_TOKEN": "r8_secret"})
    shown = config.masked_toml() + repr(config) + str(config)
    assert "discord-secret" not in shown and "r8_secret" not in shown
    assert 'token = "********"' in config.masked_toml()


def test_missing_secrets_are_named():
    with pytest.raises(ConfigError) as caught:
        parse_config({}, {}).require("discord.token", "replicate.api_token")
    assert caught.value.lines[0].startswith("discord.token: missing; set $DISCORD_TOKEN")
    assert caught.value.lines[1].startswith("replicate.api_token: missing; set "
                                            "$REPLICATE_API_TOKEN")


def test_file_problems_are_one_line(tmp_path: Path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml", {})
    broken = tmp_path / "broken.toml"
    broken.write_text("[discord\ntoken = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken, {})
    assert load_config(tmp_path / "nope.toml", {}, missing_ok=True) == Config()


def test_config_path_from_the_environment(tmp_path: Path):
    path = tmp_path / "custom.toml"
    path.write_text("[quota]\ndaily = 5\n")
    assert load_config(None, {"FLUX_BOT_CONFIG": str(path)}).quota.daily == 5


def test_shards_from_the_file_or_from_the_environment():
    config = parse_config({"discord": {"shard_count": 4, "shard_ids": [3, 1]}}, {})
    assert config.discord.shards() == (1, 3)
    one_file_n_processes = parse_config({"discord": {"shard_count": 2}},
                                        {"FLUX_BOT_SHARD_IDS": "0,1", "FLUX_BOT_SHARD_COUNT": "2"})
    assert one_file_n_processes.discord.shards() == (0, 1)
    assert parse_config({"discord": {"shard_count": "auto"}}, {}).discord.shards() is None
    assert parse_config({}, {}).discord.shard_count == 0  # one process, not sharded


@pytest.mark.parametrize(("discord", "env", "line"), [
    ({"shard_count": -1}, {}, 'discord.shard_count: -1 is neither a number of shards'),
    ({"shard_count": "many"}, {}, 'discord.shard_count: "many" is neither'),
    ({}, {"FLUX_BOT_SHARD_COUNT": "2", "FLUX_BOT_SHARD_IDS": "zero"},
     'discord.shard_ids: "zero" is not a list of shard numbers'),
    ({"shard_ids": [0]}, {}, "discord: shard_ids needs shard_count"),
    ({"shard_count": 2, "shard_ids": [2]}, {}, "each below shard_count (2)"),
    ({"shard_count": 2, "shard_ids": [1, 1]}, {}, "must be distinct"),
])
def test_bad_shard_settings_are_one_line_each(discord, env, line):
    (found,) = lines({"discord": discord}, env)
    assert found.startswith(line) or line in found


def test_a_postgresql_url_from_the_environment_wins_and_its_password_stays_hidden():
    config = parse_config({"storage": {"database": "data/bot.db"}},
                          {"DATABASE_URL": "postgresql://bot:pa55word@db:5432/flux"})
    assert config.storage.database == "postgresql://bot:pa55word@db:5432/flux"
    assert "pa55word" not in config.masked_toml() and "pa55word" in config.secrets()
    (line,) = lines({}, {"DATABASE_URL": "mysql://bot:pa55word@db/flux"})
    assert line.startswith("storage.database: a URL must be postgresql://") and \
        "pa55word" not in line


@pytest.mark.parametrize(("budget", "line"), [
    ({"mode": "stop"}, "budget.mode: \"stop\" is not one of 'block' or 'warn'"),
    ({"warn_at": 0}, "budget.warn_at: 0 must be above 0"),
    ({"monthly_usd": -5}, "budget.monthly_usd: -5 is below 0"),
    ({"monthly_usd": "ten"}, "budget.monthly_usd: \"ten\" is not a number"),
    ({"monthy_usd": 5}, "budget.monthy_usd: unknown key (did you mean monthly_usd?)"),
])
def test_bad_budget_settings_are_one_line_each(budget, line):
    assert lines({"budget": budget}) == [line]


def test_budget_defaults_match_the_spec():
    budget = parse_config({}, {}).budget
    assert (budget.monthly_usd, budget.daily_usd_total, budget.warn_at, budget.mode) == \
        (0.0, 0.0, 0.8, "block")


SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize(("replicate", "http", "line"), [
    ({"webhook_url": "http://bot.example.com/replicate/webhook"}, {"listen": "0.0.0.0:8080"},
     'replicate.webhook_url: "http://bot.example.com/replicate/webhook" must be https'),
    ({"webhook_url": "bot.example.com/hook"}, {"listen": "0.0.0.0:8080"},
     "replicate.webhook_url: "),
    ({"webhook_url": "https://bot.example.com/replicate/webhook"}, {},
     "replicate.webhook_url: needs http.listen"),
    ({"webhook_secret": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, {},
     "replicate.webhook_secret: is not a webhook signing secret: it does not start with whsec_"),
    ({"reconcile_seconds": 0}, {}, "replicate.reconcile_seconds: 0 is below 1"),
    ({"calls_per_minute": -1}, {}, "replicate.calls_per_minute: -1 is below 0"),
])
def test_bad_webhook_and_pacing_settings_are_one_line_each(replicate, http, line):
    found = lines({"replicate": replicate, "http": http})
    assert len(found) == 1 and found[0].startswith(line), found


def test_the_webhook_secret_may_come_from_the_environment_and_is_never_shown():
    config = parse_config({"replicate": {"webhook_url": "https://bot.example.com/replicate/"
                                         "webhook"}, "http": {"listen": "0.0.0.0:8080"}},
                          {"REPLICATE_WEBHOOK_SECRET": SECRET})
    assert config.replicate.webhook_secret.get_secret_value() == SECRET
    shown = config.masked_toml() + repr(config) + str(config)
    assert SECRET not in shown and SECRET in config.secrets()
    (line,) = lines({}, {"REPLICATE_WEBHOOK_SECRET": "whsec_" + SECRET[8:] + "!"})
    assert line.startswith("replicate.webhook_secret: is not a webhook signing secret") and \
        SECRET[8:] not in line


def test_pacing_defaults_are_replicates_limits():
    replicate = parse_config({}, {}).replicate
    assert (replicate.creates_per_minute, replicate.calls_per_minute,
            replicate.webhook_url, replicate.reconcile_seconds) == (600, 3000, "", 30)
