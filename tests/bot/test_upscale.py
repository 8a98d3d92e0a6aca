"""The upscaler's inputs, checked before anything is sent: the admin's bound on the scale,
the model's own bounds (its GPU's largest input), and a result the bot could still post."""

from __future__ import annotations

import pytest

from bot.config import parse_config
from bot.errors import OptionError
from bot.images import MAX_PIXELS
from bot.upscale import MAX_INPUT_PIXELS, UpscaleOptions, best_scale, validate_upscale
from tests.bot.test_config import lines

URL = "https://cdn.discordapp.com/attachments/1/2/flux-1-1.png"


def options(**changes) -> UpscaleOptions:
    return UpscaleOptions(**{"image": URL, "scale": 2, "width": 1024, "height": 1024,
                             **changes})


def refusal(**changes) -> OptionError:
    with pytest.raises(OptionError) as raised:
        validate_upscale(options(**changes), max_scale=4)
    return raised.value


def test_what_is_sent_is_the_models_three_inputs():
    assert validate_upscale(options(face_enhance=True), 4).api_input() == \
        {"image": URL, "scale": 2, "face_enhance": True}


@pytest.mark.parametrize("scale", [0, 5, -1, 2.5, True])
def test_a_scale_outside_the_admins_bound_is_refused(scale):
    error = refusal(scale=scale)
    assert error.key == "upscale.scale" and error.params["limit"] == 4


def test_the_admin_cannot_allow_more_than_the_model_takes():
    with pytest.raises(OptionError):
        validate_upscale(options(scale=11, width=64, height=64), max_scale=20)


def test_an_image_larger_than_the_gpu_holds_is_refused():
    side = int(MAX_INPUT_PIXELS ** 0.5) + 1
    error = refusal(width=side, height=side, scale=1)
    assert error.key == "upscale.too_large" and error.params["width"] == side


def test_a_result_too_large_to_post_is_refused_with_the_largest_that_fits():
    with pytest.raises(OptionError) as raised:  # 2.07 MP in, 75 MP out
        validate_upscale(options(width=1440, height=1440, scale=6), max_scale=10)
    error = raised.value
    assert error.key == "upscale.result_too_large"
    best = error.params["best"]
    assert 1440 * 1440 * best * best <= MAX_PIXELS < 1440 * 1440 * (best + 1) ** 2
    assert best_scale(64, 64, 4) == 4 and best_scale(10_000, 10_000, 3) == 1


def test_only_a_web_image_is_upscaled():
    assert refusal(image="file:///etc/passwd").key == "option.image_url"


def test_an_upscale_is_charged_only_when_posted():
    work = options(credits=3)
    assert (work.charge(1), work.charge(0)) == (3, 0)
    assert work.result_size == (2048, 2048) and work.outputs == 1


def test_upscale_defaults_and_bad_values():
    upscale = parse_config({}, {}).upscale
    assert (upscale.enabled, upscale.model, upscale.scale, upscale.max_scale,
            upscale.credits) == (True, "nightmareai/real-esrgan", 2, 4, 1)
    assert lines({"upscale": {"scale": 5}}) == \
        ["upscale.scale: 5 is above upscale.max_scale (4)"]
    (line,) = lines({"upscale": {"version": "latest"}})
    assert line.startswith("upscale.version:")
