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
