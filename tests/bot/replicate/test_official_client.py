"""The official `replicate` package against the local Replicate: if Replicate's own client
accepts what the fake says, the fake speaks the real protocol."""

from __future__ import annotations

import pytest
import replicate
from replicate.exceptions import ModelError, ReplicateError

from tests.fakes.replicate_server import MODEL, TOKEN, VERSION, FakeReplicate, Scenario


@pytest.fixture
def official(fake: FakeReplicate, monkeypatch: pytest.MonkeyPatch) -> replicate.Client:
    monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.01")
    return replicate.Client(api_token=TOKEN, base_url=fake.url)


async def test_async_run_with_prefer_wait(fake: FakeReplicate, official: replicate.Client):
    fake.scenario = Scenario(duration=0.1)
    output = await official.async_run(f"{MODEL}:{VERSION}",
                                      input={"prompt": "a castle", "num_outputs": 2},
                                      use_file_output=False)
    assert len(output) == 2 and all(url.startswith(f"{fake.url}/files/") for url in output)
    assert fake.creates[0].headers["Prefer"] == "wait"


async def test_create_then_poll(fake: FakeReplicate, official: replicate.Client):
    prediction = await official.predictions.async_create(version=VERSION,
                                                         input={"prompt": "x", "seed": 5})
    assert prediction.status == "starting"
    await prediction.async_wait()
    assert prediction.status == "succeeded"
    assert prediction.metrics["predict_time"] > 0
    assert "Using seed: 5" in prediction.logs and "28/28" in prediction.logs
    assert prediction.progress is not None and prediction.progress.current == 28


async def test_cancel(fake: FakeReplicate, official: replicate.Client):
    prediction = await official.predictions.async_create(version=VERSION, input={"prompt": "x"})
    await prediction.async_cancel()
    assert prediction.status == "canceled"


async def test_errors_are_understood(fake: FakeReplicate, official: replicate.Client):
    fake.refusals_expected = True  # sent on purpose: the API's document refuses it too
    with pytest.raises(ReplicateError) as caught:
        await official.predictions.async_create(version=VERSION,
                                                input={"prompt": "x", "num_outputs": 9})
    assert caught.value.status == 422 and caught.value.title == "Input validation failed"
    bad = replicate.Client(api_token="r8_wrong", base_url=fake.url)
    with pytest.raises(ReplicateError) as caught:
        await bad.predictions.async_create(version=VERSION, input={"prompt": "x"})
    assert caught.value.status == 401


async def test_model_failure(fake: FakeReplicate, official: replicate.Client):
    fake.scenario = Scenario(outcome="failed", error="boom", duration=0.05)
    with pytest.raises(ModelError) as caught:
        await official.async_run(f"{MODEL}:{VERSION}", input={"prompt": "x"})
    assert caught.value.prediction.error == "boom"
