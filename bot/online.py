"""Checking the tokens with the services themselves (`check-config --online`, and at start):
one cheap authenticated call each, and the model version, every problem a line naming the key."""

from __future__ import annotations

from typing import TextIO

import aiohttp

from bot.config import Config
from bot.replicate.client import ReplicateClient
from bot.replicate.errors import AuthenticationError, NotFoundError, ReplicateError
from bot.replicate.retry import RetryPolicy

TIMEOUT = aiohttp.ClientTimeout(total=20)


async def check_discord(session: aiohttp.ClientSession, config: Config) -> tuple[bool, str]:
    base = config.discord.api_base
    headers = {"Authorization": f"Bot {config.discord.token.get_secret_value()}"}
    try:
        async with session.get(f"{base}/users/@me", headers=headers, timeout=TIMEOUT) as resp:
            if resp.status == 200:
                me = await resp.json(content_type=None)
                return True, f"discord.token: accepted by {base} (bot {me.get('username')})"
            if resp.status == 401:
                return False, f"discord.token: refused by {base} (401 Unauthorized)"
            return False, f"discord.api_base: {base}/users/@me answered {resp.status}"
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return False, f"discord.api_base: cannot reach {base} ({type(exc).__name__})"


async def check_version(client: ReplicateClient, key: str, ref: str) -> tuple[bool, str]:
    """Whether model version `ref` (the `key` of the config that names it) exists."""
    base = client.api_base
    try:
        await client.version_info(ref)
        return True, f"{key}: {ref} exists"
    except NotFoundError:
        return False, f"{key}: {ref} not found at {base}"
    except ReplicateError as exc:
        return False, f"{key}: cannot check at {base} ({exc.describe()})"


async def check_destination(client: ReplicateClient, name: str) -> tuple[bool, str]:
    """Whether the model trainings push to exists in the account (Replicate does not make
    it: every training would fail at its create)."""
    base = client.api_base
    try:
        await client.model_info(name)
        return True, f"training.destination: {name} exists"
    except NotFoundError:
        return False, (f"training.destination: {name} not found at {base} (create it at "
                       "https://replicate.com/create, or name another model of the account)")
    except ReplicateError as exc:
        return False, f"training.destination: cannot check at {base} ({exc.describe()})"


async def check_replicate(client: ReplicateClient, config: Config | None = None
                          ) -> list[tuple[bool, str]]:
    """The token, the model version and, for what is turned on, the upscaler's version and
    the trainer's version and destination."""
    base = client.api_base
    try:
        account = await client.account()
    except AuthenticationError as exc:
        return [(False, f"replicate.api_token: refused by {base} ({exc.describe()})")]
    except NotFoundError:
        found = [(True, f"replicate.api_base: {base} has no /account (a relay?); token not "
                        "checked there")]
    except ReplicateError as exc:
        return [(False, f"replicate.api_base: cannot use {base} ({exc.describe()})")]
    else:
        found = [(True, f"replicate.api_token: accepted by {base} "
                        f"(account {account.get('username', '?')})")]
    found.append(await check_version(client, "replicate.version", client.version_ref))
    if config is not None and config.upscale.enabled:
        found.append(await check_version(client, "upscale.version", config.upscale.version_ref))
    if config is not None and config.training.enabled:
        found.append(await check_version(client, "training.version",
                                         config.training.version_ref))
        found.append(await check_destination(client, config.training.destination))
    return found


async def check_online(config: Config, out: TextIO) -> list[str]:
    """Check both tokens and the model versions; print what is fine to `out`, return the
    problems (empty: all fine)."""
    async with aiohttp.ClientSession() as session:
        client = ReplicateClient.from_settings(session, config.replicate,
                                               retry=RetryPolicy(attempts=2))
        results = [await check_discord(session, config),
                   *await check_replicate(client, config)]
    for ok, line in results:
        if ok:
            print(line, file=out)
    return [line for ok, line in results if not ok]
