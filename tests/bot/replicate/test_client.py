"""The Replicate client against the local Replicate: creation, following, cancel, deadlines,
retries and typed errors."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from bot.model import GenerationOptions, to_api_input, validate
from bot.replicate.client import ReplicateClient
from bot.replicate.errors import (
    AnswerTooLarge,
    AuthenticationError,
    InsufficientCreditError,
    InvalidInputError,
    ModelError,
    NotFoundError,
    PredictionCanceled,
    PredictionTimeout,
    RateLimitedError,
    ServerError,
    Stopping,
    TransportError,
)
from bot.replicate.lookup import find_created
from bot.replicate.prediction import Prediction
from tests.fakes.replicate_server import MODEL, VERSION, FakeReplicate, Fault, Scenario


async def test_create_sends_the_version_input_and_headers(fake: FakeReplicate, make_client):
    client = make_client(wait_seconds=7)
    await client.create({"prompt": "a castle"})
    (call,) = fake.creates
    assert call.body == {"version": f"{MODEL}:{VERSION}", "input": {"prompt": "a castle"}}
    assert call.headers["Authorization"].startswith("Bearer r8_")
    assert call.headers["Prefer"] == "wait=7"
    assert call.headers["Cancel-After"] == "600s"


async def test_wait_zero_sends_no_prefer_header(fake: FakeReplicate, make_client):
    await make_client(wait_seconds=0).create({"prompt": "x"})
    assert "Prefer" not in fake.creates[0].headers


async def test_prediction_ending_inside_the_wait_costs_one_call(fake: FakeReplicate,
                                                                make_client):
    fake.scenario, fake.wait_scale = Scenario(manual=True), 1.0
    run = asyncio.ensure_future(make_client(real_time=True, wait_seconds=60).run({"prompt": "x"}))
    await fake.wait_for(lambda: fake.holding)
    fake.finish()  # it ends while `Prefer: wait` holds the create
    assert (await run).status == "succeeded"
    assert [r.method for r in fake.requests] == ["POST"]


async def test_outputs_before_succeeded_cost_two_calls(fake: FakeReplicate, make_client):
    fake.scenario = Scenario(manual=True, output_while_processing=True)
    fake.wait_scale = 1.0
    poll = fake.gate("GET", "/predictions/")
    run = asyncio.ensure_future(make_client(real_time=True, wait_seconds=60).run({"prompt": "x"}))
    await fake.wait_for(lambda: fake.holding)
    prediction = next(iter(fake.predictions.values()))
    while not prediction.output:  # the outputs while `processing`: the hold answers
        fake.advance()
    await fake.wait_for(lambda: poll.waiting)  # the one poll for the end
    fake.finish()
    poll.open()
    assert (await run).status == "succeeded"
    assert [r.method for r in fake.requests] == ["POST", "GET"]


async def test_a_long_prediction_is_followed_after_the_wait(fake: FakeReplicate, make_client):
    fake.scenario, fake.wait_scale = Scenario(manual=True), 1.0
    run = asyncio.ensure_future(make_client(real_time=True, wait_seconds=60).run({"prompt": "x"}))
    await fake.wait_for(lambda: fake.holding)
    fake.release_holds()  # the 60 s of the hold are up; it still runs
    await fake.wait_for(lambda: fake.calls("GET"))
    fake.finish()
    assert (await run).status == "succeeded"
    assert fake.creates[0].headers["Prefer"] == "wait=60"


async def test_follows_at_the_relay_base_never_urls_get(fake: FakeReplicate, make_client):
    client = make_client(api_base=fake.relay_base)
    created = await client.create({"prompt": "x"})
    assert created.raw["urls"]["get"].startswith("https://api.replicate.com/")
    done = await client.follow(created, deadline=client.clock() + 60)
    assert done.status == "succeeded"
    assert fake.calls("GET")
    assert all(r.path.startswith(f"/replicate/v1/predictions/{created.id}")
               for r in fake.calls("GET"))


async def test_polling_starts_short_and_backs_off(fake: FakeReplicate, make_client, vtime):
    fake.scenario = Scenario(frames=12)
    await make_client().run({"prompt": "x"})
    assert vtime.sleeps[0] == 0.25
    assert vtime.sleeps == sorted(vtime.sleeps)
    assert max(vtime.sleeps) == 2.0


async def test_progress_updates_come_from_the_growing_logs(fake: FakeReplicate, make_client):
    seen: list[Prediction] = []
    fake.scenario = Scenario(frames=4)
    await make_client().run({"prompt": "x", "seed": 1234, "num_inference_steps": 20},
                            on_update=seen.append)
    steps = [p.progress.step for p in seen if p.progress.step is not None]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == 20
    assert {p.progress.total for p in seen if p.progress.total} == {20}
    assert seen[-1].progress.seed == 1234 and seen[-1].progress.percent == 100


async def test_the_deadline_cancels_a_stuck_prediction(fake: FakeReplicate, make_client):
    fake.scenario = Scenario(outcome="stuck")
    client = make_client(timeout_seconds=5)
    with pytest.raises(PredictionTimeout) as caught:
        await client.run({"prompt": "x"})
    assert caught.value.key == "replicate.timeout"
    assert len(fake.calls("POST", "/cancel")) == 1
    assert next(iter(fake.predictions.values())).status == "canceled"


async def test_cancel_ends_the_prediction(fake: FakeReplicate, make_client):
    client = make_client()
    created = await client.create({"prompt": "x"})
    canceled = await client.cancel(created.id)
    assert canceled.status == "canceled" and canceled.terminal
    with pytest.raises(PredictionCanceled):
        await client.run(resume_id=created.id)


async def test_aborted_is_terminal(fake: FakeReplicate, make_client):
    fake.scenario = Scenario(outcome="aborted")
    with pytest.raises(PredictionCanceled) as caught:
        await make_client().run({"prompt": "x"})
    assert caught.value.prediction.status == "aborted"


def test_unknown_statuses_are_not_terminal():
    assert not Prediction.from_json({"id": "p", "status": "queued"}).terminal
    for status in ("succeeded", "failed", "canceled", "aborted"):
        assert Prediction.from_json({"id": "p", "status": status}).terminal


async def test_a_failed_prediction_raises_the_model_error(fake: FakeReplicate, make_client):
    fake.scenario = Scenario(outcome="failed", error="CUDA out of memory")
    with pytest.raises(ModelError) as caught:
        await make_client().run({"prompt": "x"})
    assert caught.value.detail == "CUDA out of memory"
    assert "CUDA out of memory" in caught.value.message("en-US")


async def test_every_image_filtered_is_told_as_nsfw(fake: FakeReplicate, make_client):
    fake.scenario = Scenario(outcome="nsfw_all")
    with pytest.raises(ModelError) as caught:
        await make_client().run({"prompt": "x"})
    assert caught.value.key == "replicate.nsfw"


async def test_a_lora_the_model_cannot_load_fails_plainly(fake: FakeReplicate, make_client):
    with pytest.raises(ModelError) as caught:
        await make_client().run({"prompt": "x", "hf_lora": "not a lora"})
    assert caught.value.key == "replicate.lora_failed"


async def test_resume_follows_an_existing_prediction(fake: FakeReplicate, make_client):
    client = make_client()
    created = await client.create({"prompt": "x"})
    done = await client.run(resume_id=created.id)
    assert done.id == created.id and done.status == "succeeded"
    assert len(fake.creates) == 1


async def test_every_option_reaches_the_model_under_its_api_name(fake: FakeReplicate,
                                                                 make_client):
    options = validate(GenerationOptions(
        prompt="a castle", lora="alvdansen/frosting_lane_flux", lora_scale=0.6,
        aspect_ratio="16:9", num_outputs=2, seed=42, steps=20, guidance=4.5,
        image="https://example.com/in.png", prompt_strength=0.7, output_format="png",
        output_quality=90, disable_safety_checker=True))
    prediction = await make_client().run(to_api_input(options))
    assert fake.creates[0].body["input"] == {
        "prompt": "a castle", "hf_lora": "alvdansen/frosting_lane_flux", "lora_scale": 0.6,
        "aspect_ratio": "16:9", "num_outputs": 2, "seed": 42, "num_inference_steps": 20,
        "guidance_scale": 4.5, "image": "https://example.com/in.png", "prompt_strength": 0.7,
        "output_format": "png", "output_quality": 90, "disable_safety_checker": True}
    assert len(prediction.output) == 2
    # image-to-image: the bar's total is steps - int(steps - steps * strength)
    assert prediction.progress.total == 20 - int(20 - 20 * 0.7)


async def test_max_concurrent_predictions_in_flight(fake: FakeReplicate, make_client):
    import asyncio

    client = make_client(max_concurrent=2)
    fake.scenario = Scenario(frames=5)
    peak = 0

    def watch(_: Prediction) -> None:
        nonlocal peak
        peak = max(peak, sum(not p.terminal for p in fake.predictions.values()))

    results = await asyncio.gather(*(client.run({"prompt": f"n{i}"}, on_update=watch)
                                     for i in range(5)))
    assert all(r.status == "succeeded" for r in results)
    assert peak == 2 and len(fake.creates) == 5
    assert client.in_flight == 0 and client.waiting == 0


# -- typed errors ---------------------------------------------------------------------------

async def test_401_is_an_authentication_error(fake: FakeReplicate, make_client):
    with pytest.raises(AuthenticationError) as caught:
        await make_client(api_token="r8_wrong").create({"prompt": "x"})
    assert (caught.value.status, caught.value.title) == (401, "Unauthenticated")
    assert "valid authentication token" in caught.value.detail
    assert len(fake.creates) == 1


async def test_402_is_insufficient_credit(fake: FakeReplicate, make_client):
    fake.out_of_credit = True
    with pytest.raises(InsufficientCreditError) as caught:
        await make_client().create({"prompt": "x"})
    assert caught.value.status == 402 and caught.value.title == "Insufficient credit"
    assert "out of credit" in caught.value.message("en-US")


async def test_404_is_not_found(fake: FakeReplicate, make_client):
    with pytest.raises(NotFoundError) as caught:
        await make_client().get("nosuchprediction")
    assert caught.value.status == 404 and len(fake.calls("GET")) == 1


async def test_422_carries_the_invalid_fields(fake: FakeReplicate, make_client):
    fake.refusals_expected = True  # sent on purpose: the API's document refuses it too
    with pytest.raises(InvalidInputError) as caught:
        await make_client().create({"prompt": "x", "num_outputs": 9, "aspect_ratio": "7:7"})
    fields = {f["field"] for f in caught.value.invalid_fields}
    assert fields == {"input.num_outputs", "input.aspect_ratio"}
    assert caught.value.title == "Input validation failed"
    assert "num_outputs" in caught.value.message("en-US")


async def test_422_for_an_unknown_version(fake: FakeReplicate, make_client):
    with pytest.raises(InvalidInputError) as caught:
        await make_client(version="0" * 64).create({"prompt": "x"})
    assert caught.value.title == "Invalid version or not permitted"


# -- retries --------------------------------------------------------------------------------

async def test_get_429_honours_retry_after(fake: FakeReplicate, make_client, vtime):
    fake.faults.append(Fault("GET", kind="status", status=429, headers={"Retry-After": "3"}))
    client = make_client()
    created = await client.create({"prompt": "x"})
    await client.get(created.id)
    assert vtime.sleeps == [pytest.approx(3 * 1.05)]


async def test_get_429_without_retry_after_reads_the_detail(fake: FakeReplicate, make_client,
                                                           vtime):
    fake.faults.append(Fault("GET", status=429, body={
        "title": "Request was throttled",
        "detail": "Request was throttled. Your rate limit resets in ~7s."}))
    client = make_client()
    created = await client.create({"prompt": "x"})
    await client.get(created.id)
    assert vtime.sleeps == [pytest.approx(7 * 1.05)]


async def test_get_5xx_backs_off_exponentially(fake: FakeReplicate, make_client, vtime):
    fake.faults.append(Fault("GET", status=503, times=3))
    client = make_client()
    created = await client.create({"prompt": "x"})
    assert (await client.get(created.id)).id == created.id
    assert vtime.sleeps == pytest.approx([0.375, 0.75, 1.5])  # 0.5·2^n, half jittered (0.5)


async def test_get_html_5xx_is_retried_then_typed(fake: FakeReplicate, make_client):
    fake.faults.append(Fault("GET", kind="html", status=502, times=99))
    client = make_client()
    created = await client.create({"prompt": "x"})
    with pytest.raises(ServerError) as caught:
        await client.get(created.id)
    assert caught.value.status == 502 and caught.value.detail == "non-JSON body"
    assert len(fake.calls("GET")) == client.retry.attempts


async def test_get_malformed_json_is_retried(fake: FakeReplicate, make_client):
    fake.faults.append(Fault("GET", kind="malformed"))
    client = make_client()
    created = await client.create({"prompt": "x"})
    assert (await client.get(created.id)).id == created.id
    assert len(fake.calls("GET")) == 2


async def test_get_connection_reset_is_retried(fake: FakeReplicate, make_client):
    fake.faults.append(Fault("GET", kind="reset"))
    client = make_client()
    created = await client.create({"prompt": "x"})
    assert (await client.get(created.id)).id == created.id


async def test_get_timeout_is_retried(fake: FakeReplicate, make_client):
    fake.gate("GET", "/predictions/", times=1)  # the first poll never answers
    client = make_client(request_timeout=1.0)
    created = await client.create({"prompt": "x"})
    assert (await client.get(created.id)).id == created.id
    assert len(fake.calls("GET")) == 2


async def test_polling_survives_a_storm_of_failures(fake: FakeReplicate, make_client):
    fake.faults += [Fault("GET", status=429, times=10), Fault("GET", kind="html", times=10)]
    prediction = await make_client().run({"prompt": "x"})
    assert prediction.status == "succeeded"


async def test_create_is_retried_on_429(fake: FakeReplicate, make_client, vtime):
    fake.faults.append(Fault("POST", status=429, headers={"Retry-After": "2"}))
    prediction = await make_client().create({"prompt": "x"})
    assert len(fake.creates) == 2 and len(fake.predictions) == 1
    assert prediction.id in fake.predictions
    assert vtime.sleeps == [pytest.approx(2.1)]


@pytest.mark.parametrize("fault", [Fault("POST", status=503), Fault("POST", kind="html"),
                                   Fault("POST", kind="reset")])
async def test_create_is_not_retried_when_it_may_have_run(fake: FakeReplicate, make_client,
                                                         fault: Fault):
    fake.faults.append(fault)
    with pytest.raises((ServerError, TransportError)):
        await make_client().create({"prompt": "x"})
    assert len(fake.creates) == 1


async def test_create_timeout_is_not_retried(fake: FakeReplicate, make_client):
    fake.gate("POST", "/predictions")  # the create never answers
    with pytest.raises(TransportError):
        await make_client(request_timeout=0.5).create({"prompt": "x"})
    assert len(fake.creates) == 1


async def test_create_is_retried_when_the_connection_was_refused(session, vtime):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    attempts: list[int | None] = []
    client = ReplicateClient(session, api_token="r8_x", api_base=f"http://127.0.0.1:{port}/v1",
                             clock=vtime.clock, sleep=vtime.sleep, rand=lambda: 0.5,
                             observer=lambda method, url, status, secs: attempts.append(status))
    with pytest.raises(TransportError) as caught:
        await client.create({"prompt": "x"})
    assert attempts == [None] * client.retry.create_attempts
    assert caught.value.key == "replicate.unavailable"


async def test_rate_limit_on_create_gives_up_after_its_attempts(fake: FakeReplicate,
                                                               make_client):
    fake.faults.append(Fault("POST", status=429, times=99))
    client = make_client()
    with pytest.raises(RateLimitedError):
        await client.create({"prompt": "x"})
    assert len(fake.creates) == client.retry.create_attempts


async def test_canceled_while_the_create_is_held_the_prediction_is_canceled_too(
        fake: FakeReplicate, make_client):
    fake.scenario = Scenario(manual=True)
    fake.wait_scale = 1.0
    client = make_client(real_time=True, wait_seconds=60)
    task = asyncio.ensure_future(client.run({"prompt": "x"}))
    await fake.wait_for(lambda: fake.holding)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    fake.release_holds()  # the create answers: only now is the id known
    await client.close()  # waits for the orphaned create to come back
    (prediction,) = fake.predictions.values()
    assert prediction.status == "canceled"


async def test_retries_stop_at_the_deadline(fake: FakeReplicate, make_client, vtime):
    client = make_client()
    created = await client.create({"prompt": "x"})
    fake.faults.append(Fault("GET", status=503, times=50))
    deadline = vtime.now + 1.0
    with pytest.raises(ServerError):
        await client.get(created.id, deadline=deadline)
    assert vtime.now <= deadline  # not the 8 attempts of a backoff growing to 20 s
    assert len(fake.calls("GET")) < 8


async def test_a_held_create_is_found_in_the_list_behind_a_relay(fake: FakeReplicate,
                                                                make_client):
    fake.page_size = 2
    client = make_client(api_base=fake.relay_base)
    sent_at = time.time()
    wanted = {"prompt": "mine", "seed": 123456789, "num_outputs": 1}
    target = await client.create(wanted)
    for n in range(4):  # newer ones from the same account push it to the third page
        await client.create({"prompt": "mine", "seed": n})
    found = await find_created(client, wanted, sent_at)
    assert found is not None and found.id == target.id
    assert len(fake.lists) == 3
    assert all(r.path == "/replicate/v1/predictions" for r in fake.lists)  # never upstream
    assert await find_created(client, {"prompt": "never sent", "seed": 1}, sent_at) is None


async def test_an_answer_too_large_is_refused_at_once(fake: FakeReplicate, make_client):
    client = make_client()
    created = await client.create({"prompt": "x"})
    fake.faults.append(Fault("GET", status=200, body="x" * (17 * 1024 * 1024)))
    with pytest.raises(AnswerTooLarge):
        await client.get(created.id)
    assert len(fake.calls("GET")) == 1  # not read again and again


async def test_a_stopping_client_creates_nothing_even_on_retry(fake: FakeReplicate,
                                                               make_client):
    fake.faults.append(Fault("POST", status=429, headers={"Retry-After": "60"}))
    client = make_client(real_time=True)
    create = asyncio.ensure_future(client.create({"prompt": "x"}))
    await fake.wait_for(lambda: fake.creates)
    client.stop_creating()
    with pytest.raises(RateLimitedError):
        await create  # at once, not after the 60 s the 429 asked for
    with pytest.raises(Stopping):
        await client.create({"prompt": "y"})
    assert len(fake.creates) == 1 and not fake.predictions


async def test_until_outputs_returns_when_they_are_all_there(fake: FakeReplicate, make_client):
    fake.scenario = Scenario(duration=0.2, output_while_processing=True, finish_lag=0.05)
    client = make_client(real_time=True, wait_seconds=30)
    early = await client.run({"prompt": "x", "num_outputs": 2}, until_outputs=True)
    assert early.status == "processing" and len(early.output) == 2
    assert len(fake.requests) == 1  # the create alone
    final = await client.finish(early)
    assert final.status == "succeeded" and final.predict_time == 7.25
    assert len(fake.calls("GET")) >= 1
