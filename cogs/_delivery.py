"""Showing a job in Discord: the `Reporter` the job runner talks to.

While the interaction token lives (15 minutes) the job's message is edited through it; after
that through the channel, and the images are posted as a new channel message that pings the
requester (and nobody else). An upscale's message is a reply the bot posted in the channel
(`in_place`): it is edited there, images included, for as long as it takes."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord

from bot.errors import UserError
from bot.generation import GenerationResult
from bot.i18n import translate as _t
from bot.images import Fitted, extension, fit
from bot.jobs import JobState
from bot.storage.history import Generation
from bot.work import UPSCALE
from cogs._ui import (
    NO_PINGS,
    TRANSPORT,
    bar,
    job_embed,
    only,
    result_embed,
    shorten,
    shown,
    upscale_embed,
    upscale_line,
)

if TYPE_CHECKING:
    from bot.discord_bot import FluxBot

log = logging.getLogger("cogs.delivery")

TOKEN_LIFETIME = 15 * 60
TOKEN_MARGIN = 30  # stop using a token this long before it dies
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024



class NoMessage(Exception):
    """The job has no message to edit (a proxy dropped its id, or it is gone)."""


class Unsure(Exception):
    """Discord could not be asked (resets, time-outs) whether something landed."""


class DiscordReporter:
    """One job's message in one channel."""

    def __init__(self, bot: FluxBot, *, job_id: int, user_id: int, channel_id: int,
                 message_id: int | None, locale: str, application_id: int | None = None,
                 token: str | None = None, token_at: float | None = None,
                 upload_limit: int | None = None, kind: str = "imagine",
                 in_place: bool = False) -> None:
        self.bot = bot
        self.job_id = job_id
        self.user_id = user_id
        self.channel_id = channel_id
        self.message_id = message_id
        self.locale = locale
        self.application_id = application_id
        self.token = token
        self.token_at = token_at
        self.upload_limit = upload_limit or DEFAULT_UPLOAD_LIMIT
        self.kind = kind
        self.in_place = in_place  # the message is the bot's own channel message
        self._generation: Generation | None = None
        self._fitted: list[Fitted] = []  # how the posted files were made to fit

    # -- plumbing ---------------------------------------------------------------------------

    def token_alive(self) -> bool:
        return bool(self.token and self.application_id and self.token_at is not None
                    and time.time() < self.token_at + TOKEN_LIFETIME - TOKEN_MARGIN)

    def _webhook(self) -> discord.Webhook:
        assert self.application_id and self.token
        return discord.Webhook.partial(self.application_id, self.token, client=self.bot)

    def _channel(self) -> discord.PartialMessageable:
        return self.bot.get_partial_messageable(self.channel_id)

    async def _message_id(self) -> int:
        """The job's message; if its id never reached us, the interaction's original."""
        if self.message_id is None and self.token_alive():
            message = await self._webhook().fetch_message("@original")  # type: ignore[arg-type]
            self.message_id = message.id
            await self.bot.storage.history.set_message(self.job_id, message.id)
        if self.message_id is None:
            raise NoMessage
        return self.message_id

    async def _edit(self, *, retry: bool = False, **kwargs: Any) -> None:
        """Edit the job's message: through the token while it lives, else the channel.
        `files` (name, bytes) are made into fresh `discord.File`s for each attempt: a file
        read by a refused attempt would otherwise be sent empty by the next. With `retry`,
        a reset or a time-out is tried again (an edit is the same edit twice): a final state
        must not be lost to one dropped connection."""
        await retried(lambda: self._edit_once(**kwargs), 3 if retry else 1)

    async def _edit_once(self, **kwargs: Any) -> None:
        files: list[tuple[str, bytes]] | None = kwargs.pop("files", None)
        kwargs.setdefault("allowed_mentions", only(self.user_id))
        message_id = await self._message_id()
        if self.token_alive():
            try:
                await self._webhook().edit_message(message_id, **kwargs, **_attach(files))
                return
            except discord.HTTPException as exc:
                if exc.status not in (401, 404):
                    raise
                self.token = None  # expired early: use the channel from now on
        await self._channel().get_partial_message(message_id).edit(**kwargs, **_attach(files))

    # -- Reporter ---------------------------------------------------------------------------

    async def _job(self) -> Generation | None:
        """The job's record: read once, its prompt and options never change."""
        if self._generation is None:
            self._generation = await self.bot.storage.history.get(self.job_id)
        return self._generation

    async def update(self, state: JobState) -> None:
        from cogs.buttons import cancel_view

        try:
            job = await self._job()
            if job is None:
                return
            section = "upscale" if self.kind == UPSCALE else "imagine"
            lines = [upscale_line(self.locale, job)] if self.kind == UPSCALE else []
            if state.stage == "queued":
                title = _t(f"{section}.queued_title", self.locale, position=state.position)
            else:
                title = _t(f"{section}.{state.stage}_title", self.locale)
                p = state.progress
                if p.total:
                    lines.append(f"`{bar(p)}` {p.step}/{p.total} ({p.percent}%)")
                elif self.kind != UPSCALE:  # the upscaler logs no steps
                    lines.append(bar(p))
                lines.append(_t("imagine.elapsed", self.locale,
                                seconds=f"{state.elapsed:.0f}"))
            description = shown(job.prompt, 900) + ("\n\n" + "\n".join(lines) if lines else "")
            embed = job_embed(self.locale, job.id, title=title,
                              colour=discord.Colour.blurple(), description=description)
            await self._edit(embed=embed, view=cancel_view(self.job_id, self.locale))
        except (discord.HTTPException, NoMessage, *TRANSPORT) as exc:
            log.warning("job %d: progress not shown (%s)", self.job_id, _why(exc),
                        extra={"job": self.job_id})

    async def _attachments(self) -> int:
        """How many files the job's message carries (0 when it is gone); `Unsure` when
        Discord cannot be asked after a few tries."""
        for attempt in range(4):
            try:
                message = await self._channel().fetch_message(await self._message_id())
                return len(message.attachments)
            except (discord.NotFound, NoMessage):
                return 0
            except (discord.HTTPException, *TRANSPORT):
                await asyncio.sleep(0.5 * 2 ** attempt)
        raise Unsure

    async def _find_posted(self, job_id: int) -> discord.Message | None:
        """The bot's message carrying this job's images in the channel, after the job's own
        message (a channel post whose answer never came back). `Unsure` if it cannot look."""
        footer = _t("imagine.footer", self.locale, job=job_id)
        after = discord.Object(self.message_id) if self.message_id else None
        try:
            async for message in self._channel().history(limit=50, after=after):
                if message.author.id == getattr(self.bot.user, "id", None) and \
                        message.attachments and \
                        any(e.footer.text == footer for e in message.embeds):
                    return message
        except (discord.HTTPException, *TRANSPORT) as exc:
            raise Unsure from exc
        return None

    async def already_delivered(self) -> int | None:
        if self.message_id is None:
            return None
        try:
            posted = await self._attachments()
            if not posted and not self.token_alive():  # posted in the channel, perhaps
                found = await self._find_posted(self.job_id)
                if found is not None:
                    self.message_id = found.id
                    await self.bot.storage.history.set_message(self.job_id, found.id)
                    posted = len(found.attachments)
            return posted or None
        except Unsure:
            log.warning("job %d: cannot tell whether its images were posted", self.job_id,
                        extra={"job": self.job_id})
            return None

    async def _files(self, result: GenerationResult) -> list[tuple[str, bytes]]:
        """The outputs as files that fit the upload limit together (re-encoded when not)."""
        outputs = result.outputs.files
        budget = int(self.upload_limit * 0.98) // max(1, len(outputs))
        files, self._fitted = [], []
        for number, output in enumerate(outputs, start=1):
            fitted = Fitted(output.data, output.content_type)
            if len(output.data) > budget:  # re-encoding takes CPU: not on the event loop
                fitted = await asyncio.to_thread(fit, output.data, budget)
            self._fitted.append(fitted)
            name = f"flux-{self.job_id}-{'upscaled' if self.kind == UPSCALE else number}"
            files.append((f"{name}.{extension(fitted.content_type)}", fitted.data))
        return files

    def _result(self, job: Generation, result: GenerationResult
                ) -> tuple[discord.Embed, discord.ui.View]:
        """The finished job's embed and buttons: an image's (Reroll, Vary, Remix, Delete, the
        U buttons), an upscale's (Delete)."""
        from cogs.buttons import delete_view, result_view

        fitted = next((f for f in self._fitted if f.reencoded), None)
        limit = self.upload_limit
        if job.kind == UPSCALE:
            return (upscale_embed(self.locale, job, elapsed=result.elapsed, cost=result.cost,
                                  fitted=fitted, limit=limit), delete_view(job.id, self.locale))
        embed = result_embed(self.locale, job, seed=result.seed, elapsed=result.elapsed,
                             cost=result.cost, filtered=result.outputs.missing, fitted=fitted,
                             limit=limit)
        upscale = self.bot.config.upscale
        return embed, result_view(job.id, self.locale, images=len(result.outputs.files)
                                  if upscale.enabled else 0)

    async def deliver(self, job: Generation, result: GenerationResult) -> int:
        files = await self._files(result)
        embed, view = self._result(job, result)
        mention = f"<@{self.user_id}>"
        if self.token_alive() or self.in_place:
            try:
                await self._edit(content=mention, embed=embed, files=files, view=view)
                return len(files)
            except discord.HTTPException as exc:
                if exc.status not in (401, 404):
                    log.warning("job %d: the images were refused (%s %s)", self.job_id,
                                exc.status, exc.code, extra={"job": self.job_id})
                    raise UserError("imagine.cannot_post") from exc
            except NoMessage:
                pass
            except TRANSPORT as exc:  # it may have landed: look before posting again
                log.warning("job %d: posting failed (%s)", self.job_id, _why(exc),
                            extra={"job": self.job_id})
                if await self._posted(len(files)):
                    return len(files)
        return await self._post_in_channel(job, mention, embed, view, files)

    async def _posted(self, count: int) -> bool:
        """Whether the job's message carries its images (after an answer that never came).
        Unsure (Discord unreachable) counts as posted: never post twice."""
        try:
            found = await self._attachments()
            log.info("job %d: its message carries %d file(s) after the reset", self.job_id,
                     found, extra={"job": self.job_id})
            return found >= count
        except Unsure:
            log.warning("job %d: cannot tell whether the images landed; not posting again",
                        self.job_id, extra={"job": self.job_id})
            return True

    async def _post_in_channel(self, job: Generation, mention: str, embed: discord.Embed,
                               view: discord.ui.View, files: list[tuple[str, bytes]]) -> int:
        """A new channel message with the images. Its nonce makes Discord answer a repeat
        with the message it already made; after an answer lost to a reset, the channel's
        history is read first, so a post that landed is never made twice."""
        message: discord.Message | None = None
        for attempt in range(4):
            try:
                message = await self._channel().send(
                    mention + " " + _t("imagine.ready", self.locale), embed=embed,
                    view=view, allowed_mentions=only(self.user_id), nonce=f"flux-job-{job.id}",
                    **_attach(files, "files"))
                break
            except discord.HTTPException as exc:
                log.warning("job %d: the channel refused the images (%s %s)", job.id,
                            exc.status, exc.code, extra={"job": job.id})
                raise UserError("imagine.cannot_post") from exc
            except TRANSPORT as exc:
                await asyncio.sleep(0.5 * 2 ** attempt)
                try:
                    message = await self._find_posted(job.id)
                except Unsure:
                    message = None
                if message is not None:
                    break
                if attempt == 3:
                    log.warning("job %d: the images could not be posted (%s)", job.id,
                                _why(exc), extra={"job": job.id})
                    raise UserError("imagine.cannot_post") from exc
        assert message is not None
        old, self.message_id = self.message_id, message.id
        await self.bot.storage.history.set_message(job.id, message.id)
        if old is not None and old != message.id:
            try:
                done = job_embed(self.locale, job.id, title=_t("imagine.done_title", self.locale),
                                 colour=discord.Colour.green(),
                                 description=_t("imagine.posted_below", self.locale))
                await retried(lambda: self._channel().get_partial_message(old).edit(
                    embed=done, view=None))
            except (discord.HTTPException, *TRANSPORT):
                pass
        return len(files)

    async def annotate(self, job: Generation, result: GenerationResult) -> None:
        embed, view = self._result(job, result)
        try:  # the embed only: the attachments stay as posted
            await self._edit(embed=embed, view=view, retry=True)
        except (discord.HTTPException, NoMessage, *TRANSPORT) as exc:
            log.warning("job %d: cost not shown (%s)", self.job_id, _why(exc),
                        extra={"job": self.job_id})

    def _what(self, job: Generation) -> str:
        """The first line of the job's failure message: what was asked."""
        return shown(job.prompt, 500)

    async def fail(self, job: Generation, error: UserError, refunded: int) -> None:
        title = _t("imagine.canceled_title" if error.key == "replicate.canceled"
                   else "imagine.failed_title", self.locale)
        text = error.message(self.locale) + "\n" + _t("imagine.refunded", self.locale,
                                                      count=refunded)
        embed = job_embed(self.locale, job.id, title=title, colour=discord.Colour.red(),
                          description=f"{self._what(job)}\n\n{shorten(text, 3000)}")
        try:
            await self._edit(embed=embed, view=None, retry=True)
            return
        except (discord.HTTPException, NoMessage, *TRANSPORT):
            pass
        text = shorten(text, 1900)
        try:  # the message is gone or cannot be edited: say it in the channel
            await self._channel().send(f"<@{self.user_id}> {text}",
                                       allowed_mentions=only(self.user_id))
            return
        except (discord.HTTPException, *TRANSPORT):
            pass
        try:  # not even that (no permission to post there): a direct message
            dm = await self.bot.create_dm(discord.Object(self.user_id))
            await dm.send(text, embed=embed, allowed_mentions=NO_PINGS)
        except (discord.HTTPException, *TRANSPORT):
            log.warning("job %d: could not tell the member it failed", self.job_id,
                        extra={"job": self.job_id})


async def retried(call: Callable[[], Awaitable[Any]], tries: int = 3) -> Any:
    """`call()`, tried again after a reset or a time-out (for calls that may be repeated)."""
    for attempt in range(tries):
        try:
            return await call()
        except TRANSPORT:
            if attempt == tries - 1:
                raise
            await asyncio.sleep(0.5 * 2 ** attempt)


def _attach(files: list[tuple[str, bytes]] | None, key: str = "attachments"
            ) -> dict[str, Any]:
    """Fresh `discord.File`s under `key` (an edit takes `attachments`, a send `files`)."""
    if files is None:
        return {}
    return {key: [discord.File(io.BytesIO(data), filename=name) for name, data in files]}


def _why(exc: BaseException) -> str:
    return str(getattr(exc, "status", "")) or type(exc).__name__
