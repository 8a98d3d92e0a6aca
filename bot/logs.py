"""Logging as text or JSON, with every secret in force scrubbed from every line."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime

REDACTED = "[redacted]"

# set inside a job's task: every line logged while it runs names the job
current_job: ContextVar[int | None] = ContextVar("current_job", default=None)


class JobContext(logging.Filter):
    """Give each record the id of the job it was logged for, if any."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job", None) is None:
            record.job = current_job.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        job = getattr(record, "job", None)
        if job is None or record.getMessage().startswith(f"job {job}"):
            return line  # no job, or the message names it already
        return line.replace(": ", f": [job {job}] ", 1)


class RedactSecrets(logging.Filter):
    """Replace each secret wherever it appears in a record's final message or traceback."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self.scrub(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and `job` when a record has one."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job = getattr(record, "job", None)
        if job is not None:
            data["job"] = job
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc"] = record.exc_text
        return json.dumps(data, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = (),
                  stream: object = None) -> logging.Handler:
    """Configure the root logger once; returns the handler (tests attach their own too)."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.addFilter(JobContext())
    handler.addFilter(RedactSecrets(secrets))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # these log every statement or payload, interaction tokens included
    for noisy in ("aiosqlite", "discord.gateway", "discord.http", "discord.webhook.async_"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
    return handler
