"""Upscale through the real bot: the U buttons on a result and Apps → Upscale on it, each a job
of the second model (`nightmareai/real-esrgan` on the local Replicate, which fetches the image
it is given), posted as a reply to the original and charged to whoever asked; refunds, Cancel,
oversize results, refusals, a restart, Chinese."""

from __future__ import annotations

from tests.cogs.test_buttons import BOB, EPHEMERAL, result
from tests.cogs.test_cancel import settled, used
from tests.fakes.discord_server import Drop, User
from tests.fakes.replicate_server import UPSCALER_VERSION, VERSION, Scenario
from tests.invariants import FINAL_TITLES

ZH = User(950000000000000007, "lin", locale="zh-CN")


def upscale_creates(stack) -> list:
    return [c for c in stack.replicate.creates
            if str(c.body.get("version")).endswith(UPSCALER_VERSION)]


async def upscaled(stack, original: dict, timeout: float = 15) -> dict:
    """The reply to `original` once its upscale has ended and been settled."""
    def done() -> dict | None:
        for message in stack.discord.channel_messages(int(original["channel_id"])):
            reference = message.get("message_reference") or {}
            if str(reference.get("message_id")) == original["id"] and message["embeds"] and \
                    message["embeds"][0].get("title") in FINAL_TITLES:
                return message
        return None
    message = await stack.discord.wait_for(done, timeout)
    await stack.bot.runner.idle()
    return stack.discord.messages[int(message["id"])]


async def told(stack, sent) -> str:
    """What the member who asked was told privately, at once or after "thinking"."""
    def text() -> str | None:
        if not sent.callbacks:
            return None
        data = sent.callbacks[0].json.get("data") or {}
        if data.get("content"):
            return data["content"]
        followups = stack.discord.requests(
            "POST", f"/webhooks/{sent.data['application_id']}/{sent.token}")
        if followups and followups[-1].json.get("content"):
            return followups[-1].json["content"]
        message = stack.discord.message_for(sent)
        return (message or {}).get("content") or None
    return await stack.discord.wait_for(text)


def buttons(message: dict) -> list[dict]:
    return [c for row in message["components"] for c in row["components"]]


def job_of(message: dict) -> int:
    return int(message["embeds"][0]["footer"]["text"].split()[-1])


async def test_the_u_button_posts_a_larger_image_as_a_reply_charged_to_the_presser(stack):
    original, job_id = await result(stack, lora="frosting_lane")
    (button,) = [b for b in buttons(original) if b["custom_id"].startswith("imagine:upscale:")]
    assert button["label"] == "Upscale"
    press = await stack.discord.click(button["custom_id"], int(original["id"]), user=BOB)
    reply = await upscaled(stack, original)
    assert "Upscaling image 1 by 2×" in await told(stack, press)
    (create,) = upscale_creates(stack)
    assert create.body["input"] == {"image": original["attachments"][0]["url"], "scale": 2,
                                    "face_enhance": False}  # the image as posted, not Replicate's
    assert reply["embeds"][0]["title"] == "Done" and reply["content"] == f"<@{BOB.id}>"
    fields = {f["name"]: f["value"] for f in reply["embeds"][0]["fields"]}
    assert fields["Upscale"] == f"2× · image 1 of job {job_id}"
    shown = {f["name"]: f["value"] for f in original["embeds"][0]["fields"]}
    assert fields["LoRA × scale"] == shown["LoRA × scale"] and fields["Seed"] == "7"
    (before,), (after,) = stack.images(original), stack.images(reply)
    assert after.size == (before.width * 2, before.height * 2)
    assert fields["Size"] == f"{after.width}×{after.height}"
    assert [b["custom_id"] for b in buttons(reply)] == [f"imagine:delete:{job_of(reply)}"]
    assert await used(stack, BOB) == 1 and await used(stack) == 1  # the presser paid for it
    history = await stack.bot.storage.history.get(job_of(reply))
    assert history.kind == "upscale" and history.parent_id == job_id
    await settled(stack)


async def test_several_images_have_one_u_button_each(stack):
    original, job_id = await result(stack, num_outputs=3)
    labels = {b["custom_id"]: b["label"] for b in buttons(original)}
    assert [labels[f"imagine:upscale:{job_id}:{i}"] for i in range(3)] == ["U1", "U2", "U3"]
    await stack.discord.click(f"imagine:upscale:{job_id}:1", int(original["id"]))
    await upscaled(stack, original)
    assert upscale_creates(stack)[0].body["input"]["image"] == \
        original["attachments"][1]["url"]


async def test_apps_menu_starts_at_once_when_there_is_no_choice(start_stack):
    stack = await start_stack(upscale={"max_scale": 2})
    original, _ = await result(stack)
    await stack.discord.app_command("Upscale", int(original["id"]), user=BOB)
    reply = await upscaled(stack, original)
    assert reply["embeds"][0]["title"] == "Done" and await used(stack, BOB) == 1


async def test_apps_menu_asks_which_image_and_how_much_larger(stack):
    original, job_id = await result(stack, num_outputs=2)
    menu = await stack.discord.app_command("Upscale", int(original["id"]))
    await stack.discord.wait_for(lambda: menu.callbacks)
    picker = menu.callbacks[0].json["data"]
    assert picker["flags"] & EPHEMERAL
    select = picker["components"][0]["components"][0]
    assert select["custom_id"] == f"imagine:upscalepick:{job_id}"
    assert [o["label"] for o in select["options"]][:3] == \
        ["Image 1 · 2×", "Image 1 · 3×", "Image 1 · 4×"]
    pick = await stack.discord.click(select["custom_id"],
                                     int(stack.discord.message_for(menu)["id"]),
                                     values=["1:4"])
    reply = await upscaled(stack, original)
    assert "Upscaling image 2 by 4×" in await told(stack, pick)
    assert upscale_creates(stack)[0].body["input"] == {
        "image": original["attachments"][1]["url"], "scale": 4, "face_enhance": False}
    assert stack.images(reply)[0].size == tuple(4 * n for n in stack.images(original)[1].size)


async def test_apps_menu_refuses_an_upscale_and_charges_nothing(stack):
    original, job_id = await result(stack)
    await stack.discord.click(f"imagine:upscale:{job_id}:0", int(original["id"]))
    reply = await upscaled(stack, original)
    again = await stack.discord.app_command("Upscale", int(reply["id"]))
    assert "already an upscale" in await told(stack, again)
    assert len(upscale_creates(stack)) == 1 and await used(stack) == 2


async def test_a_failed_upscale_is_refunded_and_explained(stack):
    original, job_id = await result(stack)
    stack.replicate.scenario = Scenario(outcome="failed", error="CUDA out of memory")
    await stack.discord.click(f"imagine:upscale:{job_id}:0", int(original["id"]), user=BOB)
    reply = await upscaled(stack, original)
    assert reply["embeds"][0]["title"] == "Failed"
    assert "CUDA out of memory" in reply["embeds"][0]["description"]
    assert await used(stack, BOB) == 0
    await settled(stack)


async def test_an_input_the_upscaler_cannot_take_is_refused_before_sending(stack):
    stack.replicate.scenario = Scenario(duration=0.15, image_size=(1536, 1536))  # 2.4 MP
    original, job_id = await result(stack)
    press = await stack.discord.click(f"imagine:upscale:{job_id}:0", int(original["id"]),
                                      user=BOB)
    text = await told(stack, press)
    assert "1536×1536" in text and "Nothing was charged" in text
    assert upscale_creates(stack) == [] and await used(stack, BOB) == 0


async def test_an_oversized_result_is_re_encoded_to_fit_and_says_so(stack):
    original, job_id = await result(stack)
    limit = 1024 * 1024
    stack.replicate.scenario = Scenario(duration=0.15, image_size=(1024, 1024))  # ~3 MB PNG
    await stack.discord.click(f"imagine:upscale:{job_id}:0", int(original["id"]),
                              upload_limit=limit)
    reply = await upscaled(stack, original)
    assert reply["embeds"][0]["title"] == "Done"
    fields = {f["name"]: f["value"] for f in reply["embeds"][0]["fields"]}
    assert "Re-encoded as WebP" in fields["Re-encoded"]
    (attachment,) = reply["attachments"]
    assert attachment["size"] <= limit and attachment["filename"].endswith(".webp")
    uploads = [sum(len(data) for _, data in c.files.values()) for c in stack.discord.calls
               if c.files]
    assert max(uploads) <= limit  # never an upload that Discord would refuse


async def test_u_buttons_work_after_a_restart(start_stack, tmp_path):
    first = await start_stack()
    original, job_id = await result(first)
    await first.stop()
    second = await start_stack()
    await second.discord.click(f"imagine:upscale:{job_id}:0", int(original["id"]), user=BOB)
    reply = await upscaled(second, original)
    assert reply["embeds"][0]["title"] == "Done" and await used(second, BOB) == 1


async def test_a_member_out_of_credits_is_refused_and_nothing_is_sent(start_stack):
    stack = await start_stack(quota={"daily": 1})
    original, job_id = await result(stack)
    press = await stack.discord.click(f"imagine:upscale:{job_id}:0", int(original["id"]))
    assert "Not enough credits" in await told(stack, press)
    assert upscale_creates(stack) == [] and await used(stack) == 1
    await settled(stack)


async def test_a_spent_budget_refuses_the_upscale_and_charges_nothing(start_stack):
    stack = await start_stack(budget={"monthly_usd": 0.0062})  # one image's estimate, no more
    original, job_id = await result(stack)
    press = await stack.discord.click(f"imagine:upscale:{job_id}:0", int(original["id"]),
                                      user=BOB)
    assert "monthly image budget" in await told(stack, press)
    assert upscale_creates(stack) == [] and await used(stack, BOB) == 0


async def test_a_chinese_member_is_answered_in_chinese(stack):
    original, job_id = await result(stack)
    press = await stack.discord.click(f"imagine:upscale:{job_id}:0", int(original["id"]),
                                      user=ZH)
    reply = await upscaled(stack, original)
    assert "放大" in await told(stack, press)
    assert reply["embeds"][0]["title"] == "完成"
    assert "放大" in {f["name"] for f in reply["embeds"][0]["fields"]}


async def test_cancel_while_upscaling_stops_the_prediction_and_refunds(start_stack):
    stack = await start_stack(replicate={"wait_seconds": 60})  # the default: creates are held
    original, job_id = await result(stack)
    stack.replicate.scenario = Scenario(manual=True)
    await stack.discord.click(f"imagine:upscale:{job_id}:0", int(original["id"]), user=BOB)
    await stack.replicate.wait_for(lambda: stack.replicate.holding)
    stack.replicate.release_holds()
    job = await stack.discord.wait_for(lambda: next(
        (m for m in stack.discord.channel_messages()
         if (m.get("message_reference") or {}).get("message_id") is not None), None))
    await stack.replicate.wait_for(lambda: stack.replicate.calls("GET", "/predictions/"))
    await stack.discord.click(f"imagine:cancel:{job_of(job)}", int(job["id"]), user=BOB)
    reply = await upscaled(stack, original)
    assert reply["embeds"][0]["title"] == "Canceled"
    assert stack.replicate.calls("POST", "/cancel")  # stopped at Replicate, not only told
    assert await used(stack, BOB) == 0
    await settled(stack)


async def test_nothing_to_upscale_when_it_is_turned_off(start_stack):
    stack = await start_stack(upscale={"enabled": False})
    original, _ = await result(stack)
    assert not [b for b in buttons(original) if "upscale" in b["custom_id"]]
    assert {c.name for c in stack.bot.tree.get_commands()} >= {"imagine"}
    assert "Upscale" not in {c.name for c in stack.bot.tree.get_commands()}
    assert [c.body["version"].split(":")[-1] for c in stack.replicate.creates] == [VERSION]


async def test_a_reset_while_posting_the_reply_posts_it_once(stack):
    original, job_id = await result(stack)
    stack.discord.drops.append(Drop("POST", f"/channels/{original['channel_id']}/messages",
                                    after=True))  # posted, but the answer is lost
    await stack.discord.click(f"imagine:upscale:{job_id}:0", int(original["id"]), user=BOB)
    reply = await upscaled(stack, original)
    replies = [m for m in stack.discord.channel_messages() if m.get("message_reference")]
    assert replies == [reply] and reply["embeds"][0]["title"] == "Done"
    assert len(upscale_creates(stack)) == 1 and await used(stack, BOB) == 1


async def test_a_refused_reply_refunds_and_says_so(stack):
    original, job_id = await result(stack)
    stack.discord.forbidden_channels.add(int(original["channel_id"]))
    press = await stack.discord.click(f"imagine:upscale:{job_id}:0", int(original["id"]),
                                      user=BOB)
    assert "could not be posted in this channel" in await told(stack, press)
    assert upscale_creates(stack) == [] and await used(stack, BOB) == 0
    await settled(stack)
