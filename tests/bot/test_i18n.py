"""Both catalogues hold every message, with the same placeholders."""

import re
import string

from bot.i18n import LOCALES, catalogue, resolve, translate


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_key_exists_in_every_locale():
    keys = {locale: set(catalogue(locale)) for locale in LOCALES}
    assert keys["en-US"] == keys["zh-CN"], keys["en-US"] ^ keys["zh-CN"]


def test_placeholders_match_across_locales():
    english = catalogue("en-US")
    for key, text in catalogue("zh-CN").items():
        assert placeholders(text) == placeholders(english[key]), key


def test_chinese_messages_are_chinese():
    for key, text in catalogue("zh-CN").items():
        assert re.search(r"[\u4e00-\u9fff]", text), key


def test_every_key_used_in_the_code_exists():
    """Every literal "section.name" in bot/ and cogs/ whose section is a catalogue section
    must be a message; f-string keys are covered by the tests that render them."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2]
    from bot.config import Config

    known = set(catalogue("en-US"))
    sections = {key.split(".")[0] for key in known}
    config_keys = {f"{section}.{name}" for section, field in Config.model_fields.items()
                   for name in getattr(field.annotation, "model_fields", {})}
    used = set()
    for path in [*root.joinpath("bot").rglob("*.py"), *root.joinpath("cogs").rglob("*.py")]:
        for key in re.findall(r'(?<![f\w])"([a-z_]+(?:\.[a-z0-9_]+)+)"', path.read_text()):
            if key.split(".")[0] in sections and key not in config_keys:
                used.add(key)
    assert len(used) > 100
    assert used <= known, sorted(used - known)


def test_locale_resolution():
    assert resolve("zh-CN") == "zh-CN" and resolve("zh-TW") == "zh-CN"
    assert resolve("en-GB") == "en-US" and resolve(None) == "en-US"
    assert translate("replicate.canceled", "zh-CN") == "生成已取消。"
    assert translate("replicate.canceled", "fr") == "The generation was canceled."
