"""The Discord client: a `commands.Bot` (an `AutoShardedBot` when sharded) whose `setup_hook`
opens what the cogs use (database, HTTP session, Replicate client, job runner), loads an
explicit list of cogs, and resumes the jobs a previous run left in flight, all before the
gateway connects. With `shard_ids`, a process owns the servers of its shards only: it resumes
their jobs and no other's."""

from __future__ import annotations

import asyncio
import errno
import logging
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import discord
import yarl
from discord.ext import commands

from bot.config import Config
from bot.discord_tree import FluxTree
from bot.errors import StartupError
from bot.health import HealthServer
from bot.i18n import set_default_locale
from bot.jobs import JobRunner
from bot.metrics import Metrics
from bot.online import check_destination
from bot.pacing import LeasedPacer, LocalPacer, Pace, burst_of
from bot.push_setup import open_webhooks
from bot.replicate.client import ReplicateClient
from bot.replicate.errors import AuthenticationError, NotFoundError, ReplicateError
from bot.storage import Storage
from bot.work import models

log = logging.getLogger(__name__)

# in order; `cogs.jobs` last, as it resumes the jobs a previous run left (every button and
# command must be there first)
EXTENSIONS: tuple[str, ...] = (
    "cogs.core", "cogs.imagine", "cogs.buttons", "cogs.upscale", "cogs.quota", "cogs.history",
    "cogs.settings", "cogs.loras", "cogs.mod", "cogs.help", "cogs.jobs",
)


def use_endpoints(config: Config) -> None:
    """Point discord.py at `discord.api_base` and `discord.gateway_url` (REST proxies, tests).
    The attribute is set, not the class replaced: discord.py's webhook module imported it."""
    discord.http.Route.BASE = config.discord.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config.discord.gateway_url)


def shard_of(guild_id: int, shard_count: int) -> int:
    """Discord's rule: a server's shard; direct messages (guild 0) go to shard 0."""
    return (guild_id >> 22) % shard_count if guild_id else 0


class Flux:
    """Holds the config and the shared resources; Discord features live in cogs. Mixed with
    `commands.Bot` (`FluxBot`) or `commands.AutoShardedBot` (`ShardedFluxBot`)."""

    storage: Storage
    runner: JobRunner | None

    def __init__(self, config: Config, *, sync_commands: bool = False, **options: Any) -> None:
        options.setdefault("chunk_guilds_at_startup", False)
        options.setdefault("tree_cls", FluxTree)
        super().__init__(command_prefix=commands.when_mentioned,  # type: ignore[call-arg]
                         intents=discord.Intents(guilds=True), help_command=None,
                         allowed_mentions=discord.AllowedMentions.none(), **options)
        self.config = config
        self.sync_commands = sync_commands
        self.http_session: aiohttp.ClientSession | None = None
        self.replicate: ReplicateClient | None = None
        self.runner = None
        self.resumed = asyncio.Event()  # set once the jobs left by a previous run are picked up
        self._closing: asyncio.Future[None] | None = None
        self.metrics = Metrics()
        self.health: HealthServer | None = None
        self.gateway_up = False
        self._lag_watch: asyncio.Task[None] | None = None
        set_default_locale(config.discord.default_locale)

    def owns(self, guild_id: int) -> bool:
        """Whether this process runs the shard of `guild_id` (every one, unless `shard_ids`
        names some)."""
        shards = self.config.discord.shards()
        count = self.config.discord.shard_count
        return shards is None or not isinstance(count, int) or \
            shard_of(guild_id, count) in shards

    async def setup_hook(self) -> None:
        """Open what the cogs use, check what can be checked before members notice (each
        failure a `StartupError` naming the key), load the cogs, resume the jobs."""
        self.storage = await Storage.open(self.config.storage.database, self.config.quota,
                                          budget=self.config.budget)
        self.metrics.watch_database(lambda: self.storage.db.trips)
        # each prediction in flight may hold a connection (`Prefer: wait`), downloads need more
        slots = self.config.replicate.max_concurrent
        self.http_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=2 * slots + 20, limit_per_host=0))
        creates, calls = self.pacing()
        self.replicate = ReplicateClient.from_settings(
            self.http_session, self.config.replicate, observer=self.metrics.replicate_request,
            pace_calls=calls)
        self.runner = JobRunner(
            self.storage, self.replicate, self.http_session, models=models(self.config),
            metrics=self.metrics, image_hosts=self.image_hosts(), pace=creates)
        await self.check_replicate_token()
        webhook = await open_webhooks(self.config, self.replicate, self.storage.db,
                                      self.metrics, several=self.config.discord.shards()
                                      is not None)
        self._lag_watch = asyncio.create_task(self.metrics.watch_loop_lag())
        if self.config.http.listen:
            self.health = HealthServer(self.config.http.listen, self.metrics,
                                       gateway=lambda: self.gateway_up and not self.is_closed(),
                                       database=self.database_answers, webhook=webhook)
            try:
                await self.health.start()
            except OSError as exc:
                raise StartupError(_listen_problem(self.config.http.listen, exc)) from None
        # before the gateway connects (`cogs.jobs` resumes the jobs left in flight as it
        # loads): no new job can be mistaken for one left by a previous run
        try:
            for extension in EXTENSIONS:
                await self.load_extension(extension)
        finally:
            self.resumed.set()
        if self.sync_commands:
            await self.sync_app_commands()

    def pacing(self) -> tuple[Pace | None, Pace | None]:
        """The account's rates, for creates and for every other call: kept in memory by a
        bot in one process, in the database when processes split the shards (they share
        the account); their waits in /metrics."""
        one_process = self.config.discord.shards() is None
        paces: list[Pace | None] = []
        for kind, per_minute in (("create", self.config.replicate.creates_per_minute),
                                 ("call", self.config.replicate.calls_per_minute)):
            if not per_minute:
                paces.append(None)
                continue
            shared = partial(self.storage.processes.pace, kind, per_minute,
                             burst_of(per_minute))
            pace: Pace = LocalPacer(per_minute).pace if one_process else \
                shared if kind == "create" else LeasedPacer(shared).pace
            paces.append(self.metrics.paced(kind, pace))
        return paces[0], paces[1]

    async def check_replicate_token(self) -> None:
        """A refused token stops the start (every /imagine would fail); an API out of reach
        does not (it may be back before the first member asks)."""
        assert self.replicate is not None
        base = self.replicate.api_base
        try:
            await self.replicate.account()
            log.info("replicate.api_token accepted by %s", base)
        except AuthenticationError as exc:
            raise StartupError(f"replicate.api_token: refused by {base} "
                               f"({exc.describe()})") from None
        except NotFoundError:
            log.info("%s has no /account (a relay?): the token is checked by the first job",
                     base)
        except ReplicateError as exc:
            log.warning("replicate: cannot check the token at %s (%s); going on", base,
                        exc.describe())
        if self.config.training.enabled:  # /lora train would fail at every create
            ok, line = await check_destination(self.replicate, self.config.training.destination)
            if not ok:
                log.warning("%s; /lora train fails until it does", line)

    def image_hosts(self) -> tuple[str, ...]:
        """Where input images may be fetched from besides Discord's CDN: the configured REST
        base's own host (a proxy, or the tests' loopback Discord)."""
        return (urlsplit(self.config.discord.api_base).netloc,)

    async def sync_app_commands(self) -> None:
        """Register the slash commands: to `guild_ids` (instant) or globally."""
        if self.config.discord.guild_ids:
            for guild_id in self.config.discord.guild_ids:
                guild = discord.Object(guild_id)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()
        log.info("slash commands synced")

    async def on_ready(self) -> None:
        self.gateway_up = True
        log.info("connected as %s to %d server(s)", self.user, len(self.guilds))

    async def on_resumed(self) -> None:
        self.gateway_up = True
        log.info("gateway session resumed")

    async def on_disconnect(self) -> None:
        self.gateway_up = False

    async def database_answers(self) -> bool:
        row = await self.storage.db.fetchone("SELECT 1")
        return row is not None and row[0] == 1

    async def close(self) -> None:
        """Stop taking jobs, keep the state of those in flight, close everything. Called by
        the signal handler and by `async with`; both wait for the same, single close."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        if self.runner is not None:
            await self.runner.shutdown()
        if self.health is not None:
            await self.health.close()
        if self._lag_watch is not None:
            self._lag_watch.cancel()
        await super().close()
        if self.replicate is not None:
            await self.replicate.close()
        if self.http_session is not None:
            await self.http_session.close()
        if getattr(self, "storage", None) is not None:
            await self.storage.close()


def _listen_problem(listen: str, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"http.listen: {listen} is already in use (another process listens there)"
    return f"http.listen: cannot listen on {listen} ({exc.strerror or type(exc).__name__})"


class FluxBot(Flux, commands.Bot):
    """One process, one gateway connection: the default."""


class ShardedFluxBot(Flux, commands.AutoShardedBot):
    """Several shards in this process (all of them, or `shard_ids`)."""


def make_bot(config: Config, **options: Any) -> Flux:
    """The bot for `config`: sharded when `discord.shard_count` says so."""
    count = config.discord.shard_count
    if not count:
        return FluxBot(config, **options)
    if count != "auto":
        options.setdefault("shard_count", count)
        shards = config.discord.shards()
        if shards is not None:
            options.setdefault("shard_ids", list(shards))
    return ShardedFluxBot(config, **options)
