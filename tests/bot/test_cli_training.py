"""`check-config --online` and the start-up check for `[training]`, as an admin meets them: the
trainer's version and the destination model must exist, or a line names the key and the URL."""

from __future__ import annotations

import logging
from pathlib import Path

from tests.bot.test_cli import cli
from tests.bot.test_startup import TOKENS
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.replicate_server import FakeReplicate
from tests.fakes.trainer import DESTINATION, TRAINER, TRAINER_VERSION
from tests.process import write_config

ON = f'[training]\nenabled = true\ndestination = "{DESTINATION}"\n'


async def online(config: Path) -> tuple[int, str]:
    code, _, err = await cli("check-config", "--online", "--config", str(config), env=TOKENS)
    return code, err


async def test_check_config_online_checks_the_trainer_and_its_destination(
        tmp_path: Path, fake: FakeReplicate):
    async with FakeDiscord() as discord:
        config = write_config(tmp_path, discord, fake, extra=ON)
        code, err = await online(config)
        assert code == 0, err
        assert f"training.version: {TRAINER}:{TRAINER_VERSION} exists" in err
        assert f"training.destination: {DESTINATION} exists" in err
        config.write_text(config.read_text().replace(DESTINATION, "flux-admin/nowhere"))
        code, err = await online(config)
        assert code == 2 and "Traceback" not in err
        assert (f"training.destination: flux-admin/nowhere not found at {fake.relay_base}"
                in err)
        config.write_text(config.read_text().replace("enabled = true", "enabled = false"))
        code, err = await online(config)
        assert code == 0 and "training." not in err


async def test_a_missing_destination_is_said_at_start(start_stack, caplog):
    caplog.set_level(logging.WARNING, logger="bot.discord_bot")
    stack = await start_stack(training={"enabled": True, "destination": "flux-admin/nowhere"})
    assert stack.bot.is_ready()
    (line,) = [r.getMessage() for r in caplog.records
               if r.getMessage().startswith("training.destination")]
    assert line.startswith("training.destination: flux-admin/nowhere not found at") and \
        line.endswith("/lora train fails until it does")
