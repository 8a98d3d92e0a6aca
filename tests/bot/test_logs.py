"""Secrets never reach a log line, whatever logs them; JSON lines carry the job id."""

import io
import json
import logging

from bot.logs import REDACTED, setup_logging


def test_secrets_are_scrubbed_from_messages_arguments_and_tracebacks():
    stream = io.StringIO()
    setup_logging("DEBUG", "text", ["r8_secret_value", "discord.secret"], stream=stream)
    log = logging.getLogger("test")
    log.info("token is %s", "r8_secret_value")
    log.debug("header Authorization: Bearer r8_secret_value")
    try:
        raise RuntimeError("failed with discord.secret")
    except RuntimeError:
        log.exception("boom")
    text = stream.getvalue()
    assert "r8_secret_value" not in text and "discord.secret" not in text
    assert text.count(REDACTED) >= 3 and "RuntimeError: failed with [redacted]" in text


def test_json_lines_with_job_id():
    stream = io.StringIO()
    setup_logging("INFO", "json", [], stream=stream)
    logging.getLogger("bot.job").info("posted %d images", 2, extra={"job": 17})
    line = json.loads(stream.getvalue())
    assert line["message"] == "posted 2 images" and line["job"] == 17 and line["level"] == "INFO"


async def test_every_line_logged_inside_a_job_names_it():
    import asyncio

    from bot.logs import current_job

    stream = io.StringIO()
    setup_logging("INFO", "text", [], stream=stream)

    async def job(job_id: int) -> None:
        current_job.set(job_id)
        logging.getLogger("bot.replicate.client").warning("poll failed")

    await asyncio.gather(job(7), job(8))
    logging.getLogger("bot").info("not about a job")
    lines = stream.getvalue().splitlines()
    assert sorted(line.split(": ", 1)[1] for line in lines[:2]) == [
        "[job 7] poll failed", "[job 8] poll failed"]
    assert lines[2].endswith("bot: not about a job")
