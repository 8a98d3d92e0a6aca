"""The CLI as an admin runs it: a real process, against the local Replicate."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.fakes.replicate_server import TOKEN, FakeReplicate, Scenario, make_image

DISCORD_SECRET = "discord-secret-token-value"


async def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None
              ) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("DISCORD_TOKEN", "REPLICATE_API_TOKEN", "FLUX_BOT_CONFIG")}
    clean["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=clean | (env or {}), cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(body)
    return path


async def test_check_config_valid_prints_it_masked(tmp_path: Path):
    path = write_config(tmp_path, f'[discord]\ntoken = "{DISCORD_SECRET}"\n')
    code, out, err = await cli("check-config", "--config", str(path),
                               env={"REPLICATE_API_TOKEN": TOKEN})
    assert code == 0, err
    assert 'token = "********"' in out and 'api_token = "********"' in out
    assert DISCORD_SECRET not in out + err and TOKEN not in out + err
    assert "wait_seconds = 60" in out


async def test_check_config_bad_value_exits_2_with_one_line(tmp_path: Path):
    path = write_config(tmp_path, "[replicate]\nwait_seconds = 90\n")
    code, out, err = await cli("check-config", "--config", str(path),
                               env={"DISCORD_TOKEN": "x" * 10, "REPLICATE_API_TOKEN": TOKEN})
    assert code == 2
    assert err.strip() == "replicate.wait_seconds: 90 is above 60"
    assert "Traceback" not in err and out == ""


async def test_check_config_missing_secret_and_missing_file(tmp_path: Path):
    path = write_config(tmp_path, "")
    code, _, err = await cli("check-config", "--config", str(path),
                             env={"REPLICATE_API_TOKEN": TOKEN})
    assert code == 2 and err.startswith("discord.token: missing")
    code, _, err = await cli("check-config", "--config", str(tmp_path / "none.toml"))
    assert code == 2 and "file not found" in err and "Traceback" not in err


async def test_config_path_from_flux_bot_config(tmp_path: Path):
    path = write_config(tmp_path, "[quota]\ndaily = 7\n")
    code, out, _ = await cli("check-config", env={
        "FLUX_BOT_CONFIG": str(path), "DISCORD_TOKEN": "x" * 10, "REPLICATE_API_TOKEN": TOKEN})
    assert code == 0 and "daily = 7" in out


def relay_config(tmp_path: Path, fake: FakeReplicate, extra: str = "") -> Path:
    """Through a relay prefix; predictions end inside `Prefer: wait`, as most real ones do."""
    if fake.scenario.duration is None:
        fake.scenario.duration = 0.05
    return write_config(tmp_path, f'[replicate]\napi_base = "{fake.relay_base}"\n'
                                  f"wait_seconds = 30\n{extra}")


async def test_generate_saves_real_images(tmp_path: Path, fake: FakeReplicate):
    out_dir = tmp_path / "images"
    path = relay_config(tmp_path, fake, '[[loras]]\nname = "frost"\nref = "a/frost"\n'
                                        'trigger = "frstingln"\nscale = 0.6\n')
    code, out, err = await cli("generate", "a castle", "--lora", "frost", "--num-outputs", "2",
                               "--seed", "42", "--steps", "20", "--output-format", "png",
                               "--aspect-ratio", "16:9", "--out", str(out_dir),
                               "--config", str(path), env={"REPLICATE_API_TOKEN": TOKEN})
    assert code == 0, err
    (prediction_id,) = fake.predictions
    paths = [Path(line) for line in out.split()]
    assert [p.name for p in paths] == [f"{prediction_id}-0.png", f"{prediction_id}-1.png"]
    for saved in paths:
        assert Image.open(saved).size == (84, 48)
    sent = fake.creates[0].body["input"]
    assert sent["prompt"] == "a castle, frstingln" and sent["hf_lora"] == "a/frost"
    assert sent["lora_scale"] == 0.6 and sent["seed"] == 42 and sent["num_inference_steps"] == 20
    assert fake.creates[0].path == "/replicate/v1/predictions"
    assert fake.creates[0].headers["Prefer"] == "wait=30"
    assert "28/28" not in err and "20/20" in err  # the progress bar ran
    assert TOKEN not in out + err
    assert "cost: $0.0101 (7.2 s of GPU at $0.0014/s" in err  # 7.25 s x $0.0014, said


async def test_generate_keeps_files_in_the_folder_whatever_id_the_api_gives(
        tmp_path: Path, fake: FakeReplicate):
    fake.wait_scale = 1.0
    fake.scenario = Scenario(duration=0.05, reported_id="/../../outside")
    out_dir = tmp_path / "a" / "images"
    code, out, err = await cli("generate", "x", "--out", str(out_dir),
                               "--config", str(relay_config(tmp_path, fake, "")),
                               env={"REPLICATE_API_TOKEN": TOKEN})
    assert code == 0, err
    (saved,) = [Path(line) for line in out.split()]
    assert saved.parent == out_dir and saved.name == "outside-0.webp"
    assert sorted(p.name for p in tmp_path.rglob("*.webp")) == ["outside-0.webp"]


async def test_generate_image_to_image_from_a_file(tmp_path: Path, fake: FakeReplicate):
    source = tmp_path / "in.png"
    source.write_bytes(make_image("png", (32, 32), 1))
    code, _, err = await cli("generate", "make it blue", "--image", str(source),
                             "--prompt-strength", "0.5", "--out", str(tmp_path),
                             "--config", str(relay_config(tmp_path, fake)),
                             env={"REPLICATE_API_TOKEN": TOKEN})
    assert code == 0, err
    sent = fake.creates[0].body["input"]
    assert sent["image"].startswith("data:image/png;base64,") and sent["prompt_strength"] == 0.5


@pytest.mark.parametrize(("args", "message"), [
    (["--num-outputs", "9"], "error: --num-outputs 9 is above limits.max_num_outputs (4)"),
    (["--lora", "not a lora"], "error: not a lora is not a LoRA the model accepts."),
    (["--aspect-ratio", "5:5"], "error: aspect_ratio: 5:5 is not one of"),
    (["--image", "/no/such/file.png"], "error: cannot read the image /no/such/file.png"),
])
async def test_generate_refuses_bad_options_before_calling_replicate(
        tmp_path: Path, fake: FakeReplicate, args: list[str], message: str):
    code, _, err = await cli("generate", "x", *args, "--config",
                             str(relay_config(tmp_path, fake)), env={"REPLICATE_API_TOKEN": TOKEN})
    assert code == 1 and err.startswith(message), err
    assert "Traceback" not in err and not fake.requests


async def test_generate_reports_a_model_failure(tmp_path: Path, fake: FakeReplicate):
    fake.scenario = Scenario(outcome="failed", error="CUDA out of memory")
    code, out, err = await cli("generate", "x", "--config", str(relay_config(tmp_path, fake)),
                               env={"REPLICATE_API_TOKEN": TOKEN})
    assert code == 1 and "error: The model failed: CUDA out of memory" in err
    assert out == "" and "Traceback" not in err


async def test_generate_reports_a_refused_token(tmp_path: Path, fake: FakeReplicate):
    code, _, err = await cli("generate", "x", "--config", str(relay_config(tmp_path, fake)),
                             env={"REPLICATE_API_TOKEN": "r8_wrong_token_value"})
    assert code == 1 and f"replicate.api_token: refused by {fake.relay_base} (401" in err
    assert "r8_wrong_token_value" not in err


async def test_generate_without_a_token(tmp_path: Path):
    code, _, err = await cli("generate", "x", cwd=tmp_path)
    assert code == 2 and err.startswith("replicate.api_token: missing")


async def test_generate_speaks_the_configured_language(tmp_path: Path, fake: FakeReplicate):
    fake.scenario = Scenario(outcome="nsfw_all")
    path = relay_config(tmp_path, fake, '[discord]\ndefault_locale = "zh-CN"\n')
    code, _, err = await cli("generate", "x", "--config", str(path),
                             env={"REPLICATE_API_TOKEN": TOKEN})
    assert code == 1 and "错误:所有图像都被安全过滤器拦截" in err


async def test_generate_reports_filtered_images(tmp_path: Path, fake: FakeReplicate):
    fake.scenario = Scenario(filtered=(0,))
    code, out, err = await cli("generate", "x", "--num-outputs", "2", "--out", str(tmp_path),
                               "--config", str(relay_config(tmp_path, fake)),
                               env={"REPLICATE_API_TOKEN": TOKEN})
    assert code == 0 and len(out.split()) == 1
    assert "1 image(s) were filtered" in err
    Image.open(io.BytesIO(Path(out.strip()).read_bytes())).verify()


async def test_no_command_prints_help():
    code, _, err = await cli()
    assert code == 2 and "check-config" in err


async def test_run_without_a_config_file_names_what_is_missing(tmp_path: Path):
    code, _, err = await cli("run", cwd=tmp_path)
    assert code == 2
    assert err.splitlines()[0] == "no config file at config.toml; using defaults"
    assert err.splitlines()[1].startswith("discord.token: missing")
    code, _, err = await cli("run", "--config", str(tmp_path / "none.toml"))
    assert code == 2 and "file not found" in err


async def test_generate_checks_its_folder_before_anything_is_paid_for(tmp_path: Path,
                                                                     fake: FakeReplicate):
    taken = tmp_path / "images"
    taken.write_text("a file where the folder should be")
    code, _, err = await cli("generate", "x", "--out", str(taken), "--config",
                             str(relay_config(tmp_path, fake)), env={"REPLICATE_API_TOKEN": TOKEN})
    assert code == 1 and f"--out {taken} is a file, not a folder" in err
    assert not fake.requests


async def test_generate_applies_the_admins_limits(tmp_path: Path, fake: FakeReplicate):
    config = relay_config(tmp_path, fake, "[limits]\nmax_prompt_length = 1000\n"
                                          'banned_words = ["castle"]\n')
    code, _, err = await cli("generate", "y" * 1200, "--config", str(config),
                             env={"REPLICATE_API_TOKEN": TOKEN})
    assert code == 1 and "PROMPT is 1200 characters long; limits.max_prompt_length is 1000" \
        in err
    code, _, err = await cli("generate", "a CASTLE", "--config", str(config),
                             env={"REPLICATE_API_TOKEN": TOKEN})
    assert code == 1 and "limits.banned_words" in err
    assert not fake.requests


async def test_a_mistyped_catalogue_name_is_pointed_out(tmp_path: Path, fake: FakeReplicate):
    config = relay_config(tmp_path, fake, '[[loras]]\nname = "frosting_lane"\n'
                                          'ref = "alvdansen/frosting_lane_flux"\n')
    code, _, err = await cli("generate", "x", "--lora", "frostng_lane", "--config", str(config),
                             env={"REPLICATE_API_TOKEN": TOKEN})
    assert code == 1 and "Did you mean frosting_lane?" in err and "`" not in err
    assert not fake.requests


async def test_every_generate_option_says_what_it_does():
    code, out, _ = await cli("generate", "--help")
    assert code == 0
    lines = out.splitlines()
    options = [i for i, line in enumerate(lines) if line.strip().startswith("-")]
    assert len(options) >= 14
    for i in options:
        _, _, text = lines[i].strip().partition("  ")
        following = lines[i + 1] if i + 1 < len(lines) else ""
        wrapped = following.startswith(" " * 10) and not following.strip().startswith("-")
        assert text.strip() or wrapped, lines[i]  # the help is beside the flag, or under it
