"""Downloading outputs: relay-hosted URLs, data: URIs, caps, type checks, vanished files and
images the safety checker filtered."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.replicate.errors import ModelError, OutputGone, OutputNotImage, OutputTooLarge
from bot.replicate.outputs import download_outputs
from tests.fakes.replicate_server import FakeReplicate, Scenario


async def _finish(client, **input_):
    return await client.run({"prompt": "x", **input_})


async def test_outputs_are_downloaded_as_real_images(fake: FakeReplicate, make_client):
    client = make_client()
    prediction = await _finish(client, num_outputs=3, output_format="png")
    outputs = await download_outputs(client, prediction, requested=3)
    assert [f.filename for f in outputs.files] == ["out-0.png", "out-1.png", "out-2.png"]
    for file in outputs.files:
        assert file.content_type == "image/png"
        assert Image.open(io.BytesIO(file.data)).size == (64, 64)
    assert outputs.filtered == 0 and outputs.missing == 0


async def test_downloads_run_at_once(fake: FakeReplicate, make_client):
    client = make_client()
    prediction = await _finish(client, num_outputs=4)
    fake.file_delay = 0.05
    outputs = await download_outputs(client, prediction, requested=4)
    assert len(outputs.files) == 4
    assert fake.files_peak == 4


async def test_data_uris_are_decoded(fake: FakeReplicate, make_client):
    fake.scenario = Scenario(data_uris=True)
    client = make_client()
    prediction = await _finish(client, num_outputs=2, output_format="jpg")
    assert all(url.startswith("data:image/jpeg;base64,") for url in prediction.output)
    outputs = await download_outputs(client, prediction, requested=2)
    assert [f.ext for f in outputs.files] == ["jpg", "jpg"]
    Image.open(io.BytesIO(outputs.files[0].data)).verify()
    assert not fake.calls("GET", "/files/")


async def test_filtered_images_are_reported(fake: FakeReplicate, make_client):
    fake.scenario = Scenario(filtered=(1,))
    client = make_client()
    prediction = await _finish(client, num_outputs=3)
    assert "NSFW content detected in image 1" in prediction.logs
    outputs = await download_outputs(client, prediction, requested=3)
    assert [f.filename for f in outputs.files] == ["out-0.webp", "out-2.webp"]
    assert outputs.filtered == 1 and outputs.missing == 1


async def test_all_images_filtered_fails_the_prediction(fake: FakeReplicate, make_client):
    fake.scenario = Scenario(filtered=(0, 1))
    with pytest.raises(ModelError) as caught:
        await _finish(make_client(), num_outputs=2)
    assert caught.value.key == "replicate.nsfw"


async def test_a_file_over_the_cap_is_refused(fake: FakeReplicate, make_client):
    client = make_client()
    prediction = await _finish(client)
    with pytest.raises(OutputTooLarge):
        await download_outputs(client, prediction, max_bytes=20)


async def test_a_data_uri_over_the_cap_is_refused(fake: FakeReplicate, make_client):
    fake.scenario = Scenario(data_uris=True)
    client = make_client()
    prediction = await _finish(client)
    with pytest.raises(OutputTooLarge):
        await download_outputs(client, prediction, max_bytes=20)


@pytest.mark.parametrize("scenario", [
    Scenario(file_content_type="text/html"),                      # an image sent as HTML
    Scenario(file_body=b"<html>not an image</html>"),             # HTML sent as an image
    Scenario(file_body=b"\x00" * 64, file_content_type="application/octet-stream"),
])
async def test_something_that_is_not_an_image_is_refused(fake: FakeReplicate, make_client,
                                                        scenario: Scenario):
    fake.scenario = scenario
    client = make_client()
    prediction = await _finish(client)
    with pytest.raises(OutputNotImage):
        await download_outputs(client, prediction)


async def test_vanished_files_are_told_as_gone(fake: FakeReplicate, make_client):
    fake.scenario = Scenario(file_status=404)
    client = make_client()
    prediction = await _finish(client)
    with pytest.raises(OutputGone) as caught:
        await download_outputs(client, prediction)
    assert caught.value.key == "replicate.output_gone"
    assert len(fake.calls("GET", "/files/")) == 1  # a 404 is final, not retried


async def test_data_removed_is_told_as_gone(fake: FakeReplicate, make_client):
    fake.scenario = Scenario(data_removed=True)
    client = make_client()
    prediction = await _finish(client)
    assert prediction.data_removed and prediction.output == []
    with pytest.raises(OutputGone):
        await download_outputs(client, prediction)


async def test_one_file_missing_of_several_delivers_the_rest(fake: FakeReplicate, make_client):
    client = make_client()
    prediction = await _finish(client, num_outputs=2)
    fake.files[f"{prediction.id}/out-1.webp"] = (b"", "image/webp", 404)
    outputs = await download_outputs(client, prediction, requested=2)
    assert [f.filename for f in outputs.files] == ["out-0.webp"]
    assert len(outputs.failed) == 1 and outputs.missing == 1


async def test_token_goes_only_to_the_api_host(fake: FakeReplicate, make_client):
    client = make_client()  # files are on the API's own host (a relay serving files)
    await download_outputs(client, await _finish(client))
    assert "Authorization" in fake.calls("GET", "/files/")[-1].headers
    other = make_client(api_base=fake.api_base.replace("127.0.0.1", "localhost"))
    await download_outputs(other, await _finish(other))
    assert "Authorization" not in fake.calls("GET", "/files/")[-1].headers


async def test_output_file_retries_a_5xx(fake: FakeReplicate, make_client):
    from tests.fakes.replicate_server import Fault

    client = make_client()
    prediction = await _finish(client)
    fake.faults.append(Fault("GET", path="/files/", kind="html", status=502))
    outputs = await download_outputs(client, prediction)
    assert len(outputs.files) == 1
