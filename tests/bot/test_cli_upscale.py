"""`generate --upscale N` and `check-config --online` for the second model, as an admin runs
them: a real process against the local Replicate."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tests.bot.test_cli import cli, relay_config
from tests.bot.test_startup import TOKENS
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.replicate_server import TOKEN, UPSCALER, UPSCALER_VERSION, FakeReplicate
from tests.process import write_config

OTHER_VERSION = "0" * 64


async def test_generate_upscale_saves_both_and_says_what_it_cost(tmp_path: Path,
                                                                 fake: FakeReplicate):
    out_dir = tmp_path / "images"
    code, out, err = await cli("generate", "a castle", "--num-outputs", "2", "--upscale", "3",
                               "--output-format", "png", "--out", str(out_dir),
                               "--config", str(relay_config(tmp_path, fake)),
                               env={"REPLICATE_API_TOKEN": TOKEN})
    assert code == 0, err
    image_id, *upscale_ids = fake.predictions
    paths = [Path(line) for line in out.split()]
    assert [p.name for p in paths] == [
        f"{image_id}-0.png", f"{image_id}-1.png",
        f"{upscale_ids[0]}-0-3x.png", f"{upscale_ids[1]}-1-3x.png"]
    small, large = Image.open(paths[0]).size, Image.open(paths[2]).size
    assert large == (small[0] * 3, small[1] * 3)
    _, *upscales = fake.creates
    assert [c.body["version"] for c in upscales] == [f"{UPSCALER}:{UPSCALER_VERSION}"] * 2
    outputs = fake.predictions[image_id].output
    assert [c.body["input"] for c in upscales] == [
        {"image": outputs[i], "scale": 3, "face_enhance": False} for i in (0, 1)]
    assert "saved 4 image(s)" in err and "upscale cost: $" in err
    assert "upscale.cost_per_second" in err and TOKEN not in out + err


async def test_generate_refuses_a_scale_above_the_admins_bound_before_anything(
        tmp_path: Path, fake: FakeReplicate):
    code, out, err = await cli("generate", "x", "--upscale", "5", "--config",
                               str(relay_config(tmp_path, fake)),
                               env={"REPLICATE_API_TOKEN": TOKEN})
    assert code == 1 and out == ""
    assert err.strip() == "error: --upscale 5 is not allowed; from 1 to 4 (upscale.max_scale)"
    assert not fake.requests


async def test_a_failed_upscale_keeps_the_images_made(tmp_path: Path, fake: FakeReplicate):
    path = relay_config(tmp_path, fake, f'\n[upscale]\nversion = "{OTHER_VERSION}"\n')
    code, out, err = await cli("generate", "x", "--upscale", "2", "--out", str(tmp_path),
                               "--config", str(path), env={"REPLICATE_API_TOKEN": TOKEN})
    assert code == 1 and "Traceback" not in err
    (kept,) = [Path(line) for line in out.split()]
    assert kept.is_file()  # the image made is saved and named before the upscale failed
    assert "Invalid version" in err and fake.relay_base in err


async def test_check_config_online_checks_the_upscalers_version(tmp_path: Path,
                                                                fake: FakeReplicate):
    async with FakeDiscord() as discord:
        config = write_config(tmp_path, discord, fake)
        code, _, err = await cli("check-config", "--online", "--config", str(config),
                                 env=TOKENS)
        assert code == 0, err
        assert f"upscale.version: {UPSCALER}:{UPSCALER_VERSION} exists" in err
        config.write_text(config.read_text() + f'\n[upscale]\nversion = "{OTHER_VERSION}"\n')
        code, _, err = await cli("check-config", "--online", "--config", str(config),
                                 env=TOKENS)
        assert code == 2
        assert f"upscale.version: {UPSCALER}:{OTHER_VERSION} not found at" in err
        config.write_text(config.read_text().replace("[upscale]", "[upscale]\nenabled = false"))
        code, _, err = await cli("check-config", "--online", "--config", str(config),
                                 env=TOKENS)
        assert code == 0 and "upscale.version" not in err
