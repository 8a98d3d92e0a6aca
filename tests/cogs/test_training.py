"""`/lora train` through the real bot: a zip checked before anything is paid for, a training on
the local Replicate's trainer followed in a channel message to a catalogue entry that /imagine
uses, a first sample, permissions, Cancel and failure refunded, a restart, Chinese."""

from __future__ import annotations

import asyncio
import io
import zipfile

import pytest

from tests.cogs.test_cancel import settled, used
from tests.cogs.test_upscale import told
from tests.fakes.discord_payloads import ARTIST_ROLE_ID, MOD_PERMISSIONS
from tests.fakes.discord_server import User
from tests.fakes.replicate_server import Scenario, make_image
from tests.fakes.trainer import DESTINATION, TRAINER, TRAINER_VERSION
from tests.invariants import FINAL_TITLES

TRAINING = {"training": {"enabled": True, "destination": DESTINATION, "credits": 5}}
ZH_MOD = User(950000000000000008, "mei", locale="zh-CN", permissions=MOD_PERMISSIONS)
TRAINER_ROLE = ARTIST_ROLE_ID
ARTIST = User(950000000000000009, "ana", roles=(TRAINER_ROLE,))


def make_zip(images: int = 10, extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(images):
            archive.writestr(f"pics/{i:02d}.png", make_image("png", (32, 32), i))
            archive.writestr(f"pics/{i:02d}.txt", f"a picture number {i}")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


async def train(stack, *, user=None, name="zx", data=None, filename="pics.zip", steps=20,
                trigger="zxstyle", **options):
    attachment = stack.discord.attachment(filename, make_zip() if data is None else data,
                                          "application/zip")
    return await stack.discord.slash(
        "lora", {"name": name, "trigger": trigger, "steps": steps, **options},
        subcommand="train", attachments={"images": attachment},
        user=user or stack.discord.moderator)


def trainings(stack) -> list:
    return [r for r in stack.replicate.requests
            if r.method == "POST" and r.path.endswith("/trainings")]


def training_message(stack, name: str = "zx") -> dict | None:
    return next((m for m in stack.discord.channel_messages() if m["embeds"] and
                 f"LoRA `{name}`" in m["embeds"][0].get("description", "")), None)


async def ended(stack, name: str = "zx") -> dict:
    """The training's message once it has ended and every job has settled."""
    message = await stack.discord.wait_for(
        lambda: (m := training_message(stack, name)) and
        m["embeds"][0]["title"] in FINAL_TITLES and m)
    for _ in range(2):  # the training, then the sample started as it ended
        await asyncio.wait_for(stack.bot.runner.idle(), 10)
    return stack.discord.messages[int(message["id"])]


def replies_to(stack, message: dict) -> list[dict]:
    return [m for m in stack.discord.channel_messages()
            if str((m.get("message_reference") or {}).get("message_id")) == message["id"]]


async def test_a_zip_becomes_a_catalogue_lora_with_a_first_sample(start_stack):
    stack = await start_stack(**TRAINING)
    sent = await train(stack, description="soft watercolour")
    text = await told(stack, sent)
    assert "Training `zx` on 10 pictures (20 steps)" in text
    message = await ended(stack)
    assert message["embeds"][0]["title"] == "Done"
    assert "is in this server's catalogue" in message["embeds"][0]["description"]
    assert not message["components"]  # no Cancel any more
    (create,) = trainings(stack)
    assert create.path == (f"/replicate/v1/models/{TRAINER}/versions/{TRAINER_VERSION}"
                           "/trainings")
    (uploaded,) = sent.data["data"]["resolved"]["attachments"].values()
    assert create.body == {"destination": DESTINATION, "input": {
        "input_images": uploaded["url"], "trigger_word": "zxstyle", "steps": 20}}
    (entry,) = await stack.bot.storage.loras.list(message_guild(message))
    assert entry.name == "zx" and entry.trigger == "zxstyle"
    assert entry.ref.startswith("https://replicate.delivery/") and \
        entry.ref.endswith("/trained_model.tar")
    (ping,) = replies_to(stack, message)  # the member is pinged, then a first picture
    posted = [c.json for c in stack.discord.requests("POST", "/messages")
              if (c.json or {}).get("message_reference")]
    assert posted[-1]["content"].startswith(f"<@{stack.discord.moderator.id}> your LoRA `zx`")
    assert posted[-1]["allowed_mentions"]["users"] == [stack.discord.moderator.id]
    assert ping["embeds"][0]["title"] == "Done" and len(stack.images(ping)) == 1
    sample = stack.replicate.creates[-1].body["input"]
    assert sample["hf_lora"] == entry.ref and sample["prompt"] == "zxstyle, soft watercolour"
    assert await used(stack, stack.discord.moderator) == 5  # the sample came with it
    sent = await stack.discord.slash("imagine", {"prompt": "a fox", "lora": "zx"})
    await stack.finished(sent)
    assert stack.replicate.creates[-1].body["input"]["hf_lora"] == entry.ref
    assert stack.replicate.creates[-1].body["input"]["prompt"] == "a fox, zxstyle"
    info = await stack.discord.slash("lora", {"name": "zx"}, subcommand="info")
    await stack.discord.wait_for(lambda: info.callbacks)
    fields = {f["name"]: f["value"] for f in info.callbacks[0].json["data"]["embeds"][0][
        "fields"]}
    assert fields["Trained by"] == f"<@{stack.discord.moderator.id}>"
    assert fields["Training"] == "20 steps on 10 pictures" and fields["Cost"].startswith("$")
    await settled(stack)


def message_guild(message: dict) -> int:
    return int(message["guild_id"])


async def test_progress_shows_steps_and_the_time_left(start_stack):
    stack = await start_stack(**TRAINING)
    stack.replicate.scenario = Scenario(manual=True, frames=4)
    await train(stack, steps=200)
    await stack.replicate.wait_for(lambda: trainings(stack))
    await stack.replicate.wait_for(lambda: stack.replicate.predictions)
    training = next(iter(stack.replicate.predictions.values()))
    training.advance()
    training.advance()  # processing, then 50 of 200 steps logged
    shown = await stack.discord.wait_for(
        lambda: (m := training_message(stack)) and "50/200" in
        m["embeds"][0]["description"] and m)
    assert shown["embeds"][0]["title"] == "Training…"
    assert "about 2:30 left" in shown["embeds"][0]["description"]
    stack.replicate.scenario = Scenario()  # the sample that follows runs by itself
    stack.replicate.finish(training.id)
    assert (await ended(stack))["embeds"][0]["title"] == "Done"


ZIP_BOMB = {"pics/big.png": b"\x89PNG\r\n\x1a\n" + bytes(60 * 1024 * 1024)}


@pytest.mark.parametrize(("data", "filename", "text"), [
    (b"not a zip at all", "pics.zip", "must be one .zip file"),
    (make_zip(), "pics.png", "must be one .zip file"),
    (make_zip(images=2), "pics.zip", "holds 2 picture(s); at least 5"),
    (make_zip(extra={"inner.zip": make_zip(1)}), "pics.zip", "archive inside the archive"),
    (make_zip(extra={"../../etc/cron.d/x.png": b"x"}), "pics.zip", "will not unpack"),
    (make_zip(extra={"notes.exe": b"MZ"}), "pics.zip", "`notes.exe` is neither"),
    (make_zip(extra={"fake.png": b"<html>"}), "pics.zip", "`fake.png` is not really"),
    (make_zip(extra=ZIP_BOMB), "pics.zip", "unpacks to far more"),
])
async def test_a_bad_zip_is_refused_and_nothing_is_charged(start_stack, data, filename, text):
    stack = await start_stack(**TRAINING)
    sent = await train(stack, data=data, filename=filename)
    answer = await told(stack, sent)
    assert text in answer and "Nothing was charged" in answer
    assert trainings(stack) == [] and await used(stack, stack.discord.moderator) == 0
    assert training_message(stack) is None


async def test_who_may_train(start_stack):
    stack = await start_stack(**{"training": {**TRAINING["training"],
                                              "allowed_role_ids": [TRAINER_ROLE]}})
    refused = await train(stack, user=stack.discord.member)
    assert "Only moderators" in await told(stack, refused)
    allowed = await train(stack, user=ARTIST, name="ana-style")
    assert "Training `ana-style`" in await told(stack, allowed)
    assert (await ended(stack, "ana-style"))["embeds"][0]["title"] == "Done"
    assert len(trainings(stack)) == 1


async def test_refusals_before_anything_is_paid(start_stack):
    stack = await start_stack(**TRAINING)
    off = await start_stack()  # training is off by default
    assert "turned off" in await told(off, await train(off))
    await off.stop()
    assert "already in the catalogue" in await told(stack, await train(stack,
                                                                       name="frosting_lane"))
    assert "from 3 to 2000" in await told(stack, await train(stack, steps=5000))
    assert trainings(stack) == [] and await used(stack, stack.discord.moderator) == 0


async def test_cancel_stops_the_training_and_refunds(start_stack):
    stack = await start_stack(**TRAINING)
    stack.replicate.scenario = Scenario(manual=True)
    await train(stack)
    await stack.replicate.wait_for(lambda: stack.replicate.predictions)
    stack.replicate.advance()  # running
    message = await stack.discord.wait_for(
        lambda: (m := training_message(stack)) and m["embeds"][0]["title"] == "Training…" and m)
    job_id = int(message["embeds"][0]["footer"]["text"].split()[-1])
    await stack.discord.click(f"imagine:cancel:{job_id}", int(message["id"]),
                              user=stack.discord.moderator)
    message = await ended(stack)
    assert message["embeds"][0]["title"] == "Canceled"
    assert stack.replicate.calls("POST", "/trainings/") and \
        stack.replicate.calls("POST", "/cancel")[-1].path.endswith("/cancel")
    assert await used(stack, stack.discord.moderator) == 0
    assert await stack.bot.storage.loras.list(message_guild(message)) == []
    await settled(stack)


async def test_a_failed_training_is_refunded_explained_and_pinged(start_stack):
    stack = await start_stack(**TRAINING)
    stack.replicate.scenario = Scenario(duration=0.1, outcome="failed",
                                        error="CUDA out of memory")
    await train(stack)
    message = await ended(stack)
    assert message["embeds"][0]["title"] == "Failed"
    assert "CUDA out of memory" in message["embeds"][0]["description"]
    (ping,) = replies_to(stack, message)
    assert ping["content"] == (f"<@{stack.discord.moderator.id}> the training of `zx` did not "
                               "succeed; 5 credit(s) refunded.")
    assert await used(stack, stack.discord.moderator) == 0
    assert await stack.bot.storage.loras.list(message_guild(message)) == []


async def test_a_training_left_by_a_stop_is_followed_again_and_posted_once(start_stack):
    first = await start_stack(**TRAINING)
    first.replicate.scenario = Scenario(manual=True)
    await train(first)
    await first.replicate.wait_for(lambda: first.replicate.predictions)
    first.replicate.advance()
    await first.discord.wait_for(
        lambda: (m := training_message(first)) and m["embeds"][0]["title"] == "Training…")
    await first.stop()
    first.replicate.scenario = Scenario()  # the sample that follows runs by itself
    first.replicate.finish()  # it ended while the bot was away
    second = await start_stack(**TRAINING)
    message = await ended(second)
    assert message["embeds"][0]["title"] == "Done" and len(trainings(second)) == 1
    assert len(await second.bot.storage.loras.list(message_guild(message))) == 1
    assert len(replies_to(second, message)) == 1
    assert await used(second, second.discord.moderator) == 5


async def test_a_chinese_moderator_is_answered_in_chinese(start_stack):
    stack = await start_stack(**TRAINING)
    sent = await train(stack, user=ZH_MOD)
    assert "正在用 10 张图片训练 `zx`" in await told(stack, sent)
    message = await ended(stack)
    assert message["embeds"][0]["title"] == "完成"
    assert "已加入本服务器的目录" in message["embeds"][0]["description"]
    assert any("你的 LoRA `zx` 已就绪" in (c.json or {}).get("content", "")
               for c in stack.discord.requests("POST", "/messages"))
