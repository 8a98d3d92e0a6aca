"""What every config section shares: strict, frozen, unknown keys refused; and URL checks."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def http_url(value: str, schemes: tuple[str, ...]) -> str:
    if not re.fullmatch(r"[a-z]+://[^\s/?#]+(/[^\s?#]*)?", value) or \
            value.split("://")[0] not in schemes:
        raise ValueError(f"{json.dumps(value)} is not a {' or '.join(schemes)} URL")
    return value.rstrip("/")
