"""Options against the model's bounds, and their API names."""

import pytest

from bot.errors import OptionError
from bot.model import ASPECT_RATIOS, GenerationOptions, to_api_input, validate


def test_defaults_map_to_the_api_names():
    assert to_api_input(validate(GenerationOptions(prompt="  a cat "))) == {
        "prompt": "a cat", "aspect_ratio": "1:1", "num_outputs": 1, "num_inference_steps": 28,
        "guidance_scale": 3.5, "output_format": "webp", "output_quality": 80}


@pytest.mark.parametrize(("change", "key", "text"), [
    ({"num_outputs": 5}, "option.above", "`num_outputs`: 5 is above the maximum 4."),
    ({"num_outputs": 0}, "option.below", "`num_outputs`: 0 is below the minimum 1."),
    ({"steps": 51}, "option.above", "`steps`: 51 is above the maximum 50."),
    ({"guidance": 10.5}, "option.above", "`guidance`: 10.5 is above the maximum 10."),
    ({"lora_scale": 1.5}, "option.above", "`lora_scale`: 1.5 is above the maximum 1."),
    ({"prompt_strength": -0.1}, "option.below", "`prompt_strength`: -0.1 is below the "
                                                "minimum 0."),
    ({"output_quality": 101}, "option.above", "`output_quality`: 101 is above the maximum 100."),
    ({"seed": -1}, "option.below", "`seed`: -1 is below the minimum 0."),
    ({"steps": 2.5}, "option.not_whole", "`steps`: 2.5 is not a whole number."),
    ({"guidance": float("nan")}, "option.not_number", "`guidance`: nan is not a number."),
    ({"aspect_ratio": "5:5"}, "option.choice", "`aspect_ratio`: `5:5` is not one of 1:1, 16:9"),
    ({"output_format": "gif"}, "option.choice", "`output_format`: `gif` is not one of webp,"),
    ({"prompt": "   "}, "option.prompt_empty", "The prompt is empty."),
    ({"image": "file:///etc/passwd"}, "option.image_url", "The image must be"),
    ({"lora": "nonsense"}, "lora.invalid", "`nonsense` is not a LoRA"),
])
def test_out_of_bounds_is_refused_plainly(change: dict, key: str, text: str):
    with pytest.raises(OptionError) as caught:
        validate(GenerationOptions(prompt="x").with_changes(**change))
    assert caught.value.key == key
    assert caught.value.message("en-US").startswith(text)
    assert caught.value.message("zh-CN") != caught.value.message("en-US")


def test_every_aspect_ratio_is_accepted():
    for ratio in ASPECT_RATIOS:
        assert validate(GenerationOptions(prompt="x", aspect_ratio=ratio)).aspect_ratio == ratio


def test_prompt_strength_is_sent_only_with_an_image():
    plain = to_api_input(GenerationOptions(prompt="x", prompt_strength=0.5))
    assert "prompt_strength" not in plain and "image" not in plain
    img = to_api_input(GenerationOptions(prompt="x", image="https://a.b/c.png",
                                         prompt_strength=0.5))
    assert img["image"] == "https://a.b/c.png" and img["prompt_strength"] == 0.5
