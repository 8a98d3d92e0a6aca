"""The zip check of `/lora train` (in memory, nothing extracted), the options a training
sends, the tqdm progress of the trainer's logs, and the `[training]` settings."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from bot.config import ConfigError, parse_config
from bot.errors import OptionError
from bot.replicate.prediction import Progress
from bot.training import MAX_ENTRIES, TrainOptions, check_training, inspect_zip
from tests.fakes.replicate_server import make_image

PNG = make_image("png", (16, 16), 1)
JPEG = make_image("jpg", (16, 16), 2)


def archive(entries: dict[str, bytes], *, link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
        if link is not None:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def pictures(n: int, **extra: bytes) -> dict[str, bytes]:
    return {**{f"p{i}.png" if i % 2 else f"p{i}.jpg": PNG if i % 2 else JPEG
               for i in range(n)}, **extra}


def refusal(data: bytes, **bounds: int) -> str:
    with pytest.raises(OptionError) as caught:
        inspect_zip(data, min_images=bounds.get("least", 2), max_images=bounds.get("most", 50))
    return caught.value.key


def test_pictures_and_their_captions_are_counted():
    facts = inspect_zip(archive(pictures(4, **{"p1.txt": b"a cat", "p2.caption": b"a dog",
                                               "sub/": b"", "__MACOSX/._p1.png": b"junk",
                                               ".DS_Store": b"junk"})),
                        min_images=2, max_images=10)
    assert (facts.images, facts.captions) == (4, 2)
    assert facts.unpacked == 2 * len(PNG) + 2 * len(JPEG) + len("a cat") + len("a dog")


@pytest.mark.parametrize(("data", "key"), [
    (b"PK\x03\x04 not really", "training.not_zip"),
    (archive(pictures(3, **{"../up.png": PNG})), "training.zip_path"),
    (archive(pictures(3, **{"/etc/x.png": PNG})), "training.zip_path"),
    (archive(pictures(3, **{"C:/x.png": PNG})), "training.zip_path"),
    (archive(pictures(3), link="p9.png"), "training.zip_path"),
    (archive(pictures(3, **{"more.tar.gz": b"\x1f\x8b"})), "training.zip_nested"),
    (archive(pictures(3, **{"inner.zip": archive(pictures(1))})), "training.zip_nested"),
    (archive(pictures(3, **{"run.sh": b"#!/bin/sh"})), "training.zip_other"),
    (archive(pictures(3, **{"p9.png": b"GIF89a not a png"})), "training.zip_image"),
    (archive(pictures(3, **{"huge.png": b"\x89PNG" + bytes(3 * 1024 * 1024)})),
     "training.zip_bomb"),
    (archive(pictures(1)), "training.too_few"),
    (archive(pictures(51)), "training.too_many"),
])
def test_a_bad_zip_is_named_before_anything_is_paid(data: bytes, key: str):
    assert refusal(data) == key


def test_a_zip_of_too_many_entries_is_refused_before_reading_them():
    data = archive({f"c{i}.txt": b"" for i in range(MAX_ENTRIES + 1)})
    assert refusal(data) == "training.zip_entries"


def test_an_encrypted_entry_is_refused():
    data = bytearray(archive(pictures(3)))
    # the general-purpose flag of the first local header and of its central directory entry
    data[6] |= 1
    central = data.rfind(b"PK\x01\x02", 0, data.rfind(b"PK\x05\x06"))
    first = data.find(b"PK\x01\x02")
    assert central >= first >= 0
    data[first + 8] |= 1
    assert refusal(bytes(data)) == "training.zip_encrypted"


def options(**changes: object) -> TrainOptions:
    base = {"name": "zx", "trigger": "zxstyle", "images": "https://cdn.discordapp.com/a.zip",
            "steps": 1000}
    return TrainOptions(**{**base, **changes})  # type: ignore[arg-type]


def test_a_training_sends_the_zip_the_trigger_and_the_steps():
    work = check_training(options(steps=500), max_steps=2000)
    assert work.api_input() == {"input_images": "https://cdn.discordapp.com/a.zip",
                                "trigger_word": "zxstyle", "steps": 500}
    assert (work.charge(1), work.charge(0)) == (20, 0)  # charged only for weights made


@pytest.mark.parametrize(("changes", "key"), [
    ({"trigger": "  "}, "training.trigger"),
    ({"trigger": "two\nlines"}, "training.trigger"),
    ({"trigger": "x" * 61}, "training.trigger"),
    ({"steps": 2}, "training.steps"),
    ({"steps": 2001}, "training.steps"),
    ({"steps": True}, "training.steps"),
    ({"images": "file:///etc/passwd"}, "option.image_url"),
])
def test_options_outside_the_bounds_are_refused(changes: dict, key: str):
    with pytest.raises(OptionError) as caught:
        check_training(options(**changes), max_steps=2000)
    assert caught.value.key == key


def test_the_trainers_bar_gives_steps_and_the_time_left():
    logs = ("Extracted 20 files\nflux_train_replicate:  24%|██▍       | 240/1000 "
            "[04:10<13:12,  1.04s/it, lr: 4e-04 loss: 4.1e-01]\r"
            "flux_train_replicate:  25%|██▌       | 250/1000 [04:20<1:13:00,  1.04s/it]\n")
    progress = Progress.from_logs(logs)
    assert (progress.step, progress.total, progress.percent) == (250, 1000, 25)
    assert progress.remaining == 73 * 60


def training_lines(section: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config({"training": section}, {})
    return caught.value.lines


@pytest.mark.parametrize(("section", "line"), [
    ({"enabled": True}, "training.destination: needed when training.enabled = true"),
    ({"destination": "no-slash"}, 'training.destination: "no-slash"'),
    ({"default_steps": 3000}, "training.default_steps: 3000 is above training.max_steps"),
    ({"min_images": 60, "max_images": 50},
     "training.min_images: 60 is above training.max_images (50)"),
    ({"allowed_role_ids": ["mods"]}, 'training.allowed_role_ids[0]: "mods" is not a whole'),
    ({"credits": -1}, "training.credits: -1 is below 0"),
])
def test_bad_training_settings_are_one_line_naming_the_key(section: dict, line: str):
    found = training_lines(section)
    assert any(text.startswith(line) for text in found), found


def test_training_is_off_until_a_destination_is_given():
    training = parse_config({}, {}).training
    assert not training.enabled and training.model == "ostris/flux-dev-lora-trainer"
    on = parse_config({"training": {"enabled": True, "destination": "me/loras"}}, {}).training
    assert on.version_ref.startswith("ostris/flux-dev-lora-trainer:")
