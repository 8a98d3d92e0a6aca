"""LoRA references: the model's five forms pass, anything else is refused with the list."""

import pytest

from bot.errors import OptionError
from bot.lora import FORMS, check_lora_ref

# every spelling of a private address that URL libraries and resolvers read as one
PRIVATE = [
    "https://127.0.0.1/x.safetensors",
    "https://10.1.2.3/x.safetensors",
    "https://[::1]/x.safetensors",
    "https://localhost/x.safetensors",
    "http://127.1/x.safetensors",
    "http://0x7f.0.0.1/x.safetensors",
    "http://0177.0.0.1/x.safetensors",
    "http://127.000.000.001/x.safetensors",
    "http://2130706433/x.safetensors",
    "http://10.1/x.safetensors",
    "http://169.254.43518/x.safetensors",              # 169.254.169.254, the metadata server
    "http://①②⑦.0.0.1/x.safetensors",                 # IDNA folds these to 127.0.0.1
    "http://127。0。0。1/x.safetensors",                # full-width dots
    "http://localhost./x.safetensors",
    "http://ＬＯＣＡＬＨＯＳＴ/x.safetensors",
    "http://%31%32%37.0.0.1/x.safetensors",
    "http://[::ffff:127.0.0.1]/x.safetensors",
    "http://[64:ff9b::7f00:1]/x.safetensors",
    "http://[fe80::1]/x.safetensors",
    "http://100.64.0.1/x.safetensors",                 # carrier-grade NAT
    "http://224.0.0.1/x.safetensors",
    "http://0/x.safetensors",
    "http://1.2.3.4.5/x.safetensors",
    "http://256.1.1.1/x.safetensors",
    "http://printer.local/x.safetensors",
]

ACCEPTED = [
    "alvdansen/frosting_lane_flux",
    "https://replicate.delivery/pbxt/AbC-123/trained_model.tar",
    "https://huggingface.co/XLabs-AI/flux-RealismLora/resolve/main/lora.safetensors",
    "https://civitai.com/api/download/models/735063?type=Model&format=SafeTensor",
    "https://civitai.com/api/download/models/735063?type=Model&format=SafeTensor&token=abc",
    "https://example.com/weights/my_lora.safetensors",
    "  alvdansen/frosting_lane_flux  ",
    "http://8.8.8.8/x.safetensors",
    "https://example.com./x.safetensors",
    "https://bücher.example/x.safetensors",
    "https://[2606:4700::1111]/x.safetensors",
]

REFUSED = [
    "frosting lane",                                  # not a repo id
    "owner/name.with.dots",                           # the model's regex has no dots
    "javascript:alert(1)",
    "file:///etc/passwd.safetensors",
    "ftp://example.com/x.safetensors",
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


@pytest.mark.parametrize("ref", PRIVATE)
def test_private_and_local_addresses_are_refused_as_such(ref: str):
    with pytest.raises(OptionError) as caught:
        check_lora_ref(ref)
    assert caught.value.key == "lora.private_host"
    assert "private or local address" in caught.value.message("en-US")
    assert "私有或本地地址" in caught.value.message("zh-CN")
