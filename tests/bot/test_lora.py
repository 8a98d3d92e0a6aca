"""LoRA references: the model's five forms pass, anything else is refused with the list."""

import pytest

from bot.errors import OptionError
from bot.lora import FORMS, check_lora_ref

ACCEPTED = [
    "alvdansen/frosting_lane_flux",
    "https://replicate.delivery/pbxt/AbC-123/trained_model.tar",
    "https://huggingface.co/XLabs-AI/flux-RealismLora/resolve/main/lora.safetensors",
    "https://civitai.com/api/download/models/735063?type=Model&format=SafeTensor",
    "https://civitai.com/api/download/models/735063?type=Model&format=SafeTensor&token=abc",
    "https://example.com/weights/my_lora.safetensors",
    "  alvdansen/frosting_lane_flux  ",
]

REFUSED = [
    "frosting lane",                                  # not a repo id
    "owner/name.with.dots",                           # the model's regex has no dots
    "javascript:alert(1)",
    "file:///etc/passwd.safetensors",
    "ftp://example.com/x.safetensors",
    "https://127.0.0.1/x.safetensors",                # private and loopback addresses
    "https://10.1.2.3/x.safetensors",
    "https://[::1]/x.safetensors",
    "https://localhost/x.safetensors",
    "https://user:pass@example.com/x.safetensors",    # credentials
    "https://example.com:8443/x.safetensors",         # odd port
    "https://example.com/a/../../x.safetensors",      # path tricks
    "https://huggingface.co.evil.com/a/b",            # only the real host
    "https://example.com/x.safetensors?next=1",       # the model checks the end of the URL
    "alvdansen/frosting\u200b_lane",                  # zero-width character
    "a/b\n",                                          # stripped: fine; but inner newline:
    "a/\nb",
    "x" * 10_000 + ".safetensors",
    "",
]


@pytest.mark.parametrize("ref", ACCEPTED)
def test_the_five_forms_are_accepted(ref: str):
    assert check_lora_ref(ref) == ref.strip()


@pytest.mark.parametrize("ref", [r for r in REFUSED if r != "a/b\n"])
def test_anything_else_is_refused_with_the_forms_listed(ref: str):
    with pytest.raises(OptionError) as caught:
        check_lora_ref(ref)
    text = caught.value.message("en-US")
    assert all(form in text for form in FORMS)
    assert len(text) < 1000
    assert "格式" in caught.value.message("zh-CN") or "形式" in caught.value.message("zh-CN")


def test_backticks_cannot_break_the_message():
    with pytest.raises(OptionError) as caught:
        check_lora_ref("``` @everyone")
    assert "```" not in caught.value.params["ref"]
