"""Hostile input through the real bot: every case ends in a clear refusal, nothing charged,
nothing crashed."""

from __future__ import annotations

import pytest

from tests.fakes.discord_server import GUILD_ID
from tests.fakes.replicate_server import make_image

EPHEMERAL = 64


async def refused(stack, sent) -> str:
    await stack.discord.wait_for(lambda: sent.callbacks)
    data = sent.callbacks[0].json["data"]
    assert data["flags"] & EPHEMERAL, data
    assert "Traceback" not in data["content"] and "went wrong" not in data["content"]
    assert not stack.replicate.creates
    assert await stack.bot.storage.db.fetchone("SELECT * FROM ledger") is None
    return data["content"]


async def test_a_prompt_of_the_maximum_length_is_taken_whole(start_stack):
    stack = await start_stack(limits={"max_prompt_length": 1000})
    prompt = ("castle " * 200)[:1000]
    await stack.finished(await stack.discord.slash("imagine", {"prompt": prompt}))
    assert stack.replicate.creates[0].body["input"]["prompt"] == prompt.strip()
    too_long = await stack.discord.slash("imagine", {"prompt": "x" * 1001})
    assert "the limit is 1000" in (await stack.discord.wait_for(
        lambda: too_long.callbacks))[0].json["data"]["content"]


async def test_control_and_invisible_characters_are_removed(stack):
    prompt = "a\x00 red\u200b cas\u202etle\x1b[31m\r\nat  dawn\ufeff"
    await stack.finished(await stack.discord.slash("imagine", {"prompt": prompt}))
    assert stack.replicate.creates[0].body["input"]["prompt"] == "a red castle[31m\nat dawn"


@pytest.mark.parametrize("prompt", ["a b\u200bad idea", "a ＢＡＤ idea", "a BAD idea"])
async def test_banned_words_cannot_be_dodged(start_stack, prompt):
    stack = await start_stack(limits={"banned_words": ["bad"]})
    assert "not allowed here" in await refused(stack, await stack.discord.slash(
        "imagine", {"prompt": prompt}))


async def test_markdown_and_links_in_a_prompt_stay_inert(stack):
    prompt = "[click me](https://evil.example) **loud** `code` @everyone <@&1>"
    message = await stack.finished(await stack.discord.slash("imagine", {"prompt": prompt}))
    description = message["embeds"][0]["description"]
    assert "\\[click me\\](https://evil.example)" in description or \
        "\\[click me](https://evil.example)" in description
    assert "\\*\\*loud\\*\\*" in description and "\\`code\\`" in description
    for call in stack.discord.calls:
        if isinstance(call.json, dict) and "allowed_mentions" in call.json:
            assert call.json["allowed_mentions"]["parse"] == []


HOSTILE_LORAS = [
    "javascript:alert(1)", "file:///etc/passwd.safetensors", "https://127.0.0.1/x.safetensors",
    "https://169.254.169.254/latest/meta-data.safetensors", "https://[::1]/a.safetensors",
    "https://example.com/a/../../etc/x.safetensors", "https://user:pw@example.com/x.safetensors",
    "a" * 10_000, "owner/name\nhf_lora: evil", "``` @everyone",
]


@pytest.mark.parametrize("lora", HOSTILE_LORAS)
async def test_hostile_lora_references_are_refused(stack, lora):
    text = await refused(stack, await stack.discord.slash("imagine", {"prompt": "x",
                                                                      "lora": lora}))
    assert ("is not a LoRA the model accepts" in text or "private or local address" in text)
    assert len(text) < 2000 and ("@everyone" not in text or "ˋ" in text)


@pytest.mark.parametrize(("options", "text"), [
    ({"num_outputs": 99}, "above the maximum 4"),
    ({"num_outputs": "2"}, "is not a number"),
    ({"steps": 20.5}, "is not a whole number"),
    ({"seed": 2**60}, "is not a number"),
    ({"steps": 0}, "below the minimum 1"),
    ({"seed": -5}, "below the minimum 0"),
    ({"guidance": 1e10}, "above the maximum 10"),
    ({"lora_scale": -1.0}, "below the minimum 0"),
    ({"aspect_ratio": "1:1000"}, "is not one of"),
    ({"output_format": "exe"}, "is not one of"),
    ({"output_quality": 1000}, "above the maximum 100"),
])
async def test_raw_option_values_beyond_discords_ranges_are_refused(stack, options, text):
    # a hostile client can send what Discord's own form would never allow
    assert text in await refused(stack, await stack.discord.slash(
        "imagine", {"prompt": "x", **options}))


async def test_an_attachment_too_large_is_refused(stack):
    attachment = stack.discord.attachment("big.png", make_image("png", (8, 8), 1),
                                          "image/png", 8, 8)
    attachment["size"] = 25 * 1024 * 1024  # what Discord says of it
    text = await refused(stack, await stack.discord.slash(
        "imagine", {"prompt": "x"}, attachments={"image": attachment}))
    assert "the limit is 20 MB" in text


async def test_a_form_is_as_guarded_as_a_command(stack):
    message = await stack.finished(await stack.discord.slash("imagine", {"prompt": "x"}))
    job_id = int(message["embeds"][0]["footer"]["text"].split()[-1])
    click = await stack.discord.click(f"imagine:remix:{job_id}", int(message["id"]))
    await stack.discord.wait_for(lambda: click.callbacks)
    ids = [row["components"][0]["custom_id"]
           for row in click.callbacks[0].json["data"]["components"]]
    cases = [({ids[0]: "y" * 10_000}, "the limit is 1000"),
             ({ids[0]: "x", ids[1]: "file:///etc/passwd"}, "is not a LoRA"),
             ({ids[0]: "x", ids[2]: "nan"}, "is not a number"),
             ({ids[0]: "x", ids[2]: "1e999"}, "is not a number"),
             ({ids[0]: "\u200b\x00 "}, "The prompt is empty")]
    for fields, text in cases:
        submit = await stack.discord.submit(f"imagine:remixform:{job_id}",
                                            {ids[0]: "", ids[1]: "", ids[2]: "", **fields})
        await stack.discord.wait_for(lambda s=submit: s.callbacks)
        data = submit.callbacks[0].json["data"]
        assert data["flags"] & EPHEMERAL and text in data["content"], data["content"]
    assert len(stack.replicate.creates) == 1
    status = await stack.bot.storage.quota.status(GUILD_ID, stack.discord.member.id)
    assert status.periods[0].used == 1


async def test_a_button_whose_record_is_gone_is_answered_plainly(stack):
    # Discord only sends custom_ids that are on the message, so the hostile case is a
    # genuine button whose generation no longer exists
    message = await stack.finished(await stack.discord.slash("imagine", {"prompt": "x"}))
    job_id = int(message["embeds"][0]["footer"]["text"].split()[-1])
    await stack.bot.storage.db.execute("DELETE FROM generations WHERE id = ?", (job_id,))
    for action in ("reroll", "vary", "remix", "delete"):
        click = await stack.discord.click(f"imagine:{action}:{job_id}", int(message["id"]))
        await stack.discord.wait_for(lambda c=click: c.callbacks)
        data = click.callbacks[0].json["data"]
        assert data["flags"] & EPHEMERAL
        assert data["content"] == "This generation no longer exists."
    assert len(stack.replicate.creates) == 1


@pytest.mark.parametrize(("options", "text"), [
    ({"name": "n" * 5000, "ref": "a/b"}, "the limit is 64"),
    ({"name": "ok", "ref": "a/b", "scale": -1.0}, "below the minimum 0"),
    ({"name": "ok", "ref": "a/b", "scale": float("inf")}, "is not a number"),
    ({"name": "ok", "ref": "a/b", "scale": "0.5"}, "is not a number"),
    ({"name": 12, "ref": "a/b"}, "must be text"),
])
async def test_values_beyond_a_commands_declared_ranges_are_refused_and_not_stored(
        stack, options, text):
    sent = await stack.discord.slash("lora", options, subcommand="add",
                                     user=stack.discord.moderator)
    await stack.discord.wait_for(lambda: sent.callbacks)
    data = sent.callbacks[0].json["data"]
    assert data["flags"] & EPHEMERAL and text in data["content"], data["content"]
    assert await stack.bot.storage.loras.list(GUILD_ID) == []


async def test_a_refusal_never_echoes_more_than_discord_takes(stack):
    sent = await stack.discord.slash("imagine", {"prompt": "x", "aspect_ratio": "9" * 6000})
    text = await refused(stack, sent)
    assert "is not one of" in text and len(text) < 2000
    lora = await stack.discord.slash("settings", {"lora": "x" * 6000}, subcommand="set")
    await stack.discord.wait_for(lambda: lora.callbacks)
    assert len(lora.callbacks[0].json["data"]["content"]) < 2000
