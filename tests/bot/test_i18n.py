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
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2]
    used = set()
    for path in [*root.joinpath("bot").rglob("*.py"), *root.joinpath("cogs").rglob("*.py")]:
        text = path.read_text()
        used |= set(re.findall(r'(?:Error|UserError|Refused|key =|\bt)\(?\s*f?"([a-z_]+\.[a-z_]+)"',
                               text))
        used |= {f"quota.exhausted_{p}" for p in ("daily", "weekly", "monthly")
                 if 'f"quota.exhausted_{' in text}
    assert used
    assert used <= set(catalogue("en-US")), used - set(catalogue("en-US"))


def test_locale_resolution():
    assert resolve("zh-CN") == "zh-CN" and resolve("zh-TW") == "zh-CN"
    assert resolve("en-GB") == "en-US" and resolve(None) == "en-US"
    assert translate("replicate.canceled", "zh-CN") == "生成已取消。"
    assert translate("replicate.canceled", "fr") == "The generation was canceled."
