"""Typed Replicate failures. Each carries what the API said (status, title, detail) for the log and
a message key for the person who asked, so a 402 reads as "the bot's Replicate account is out of
credit" rather than as a stack trace."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from bot.errors import UserError

if TYPE_CHECKING:
    from bot.replicate.prediction import Prediction


class ReplicateError(UserError):
    """Base class: an API call or a prediction did not give us images."""

    key = "replicate.error"

    def __init__(
        self,
        detail: str = "",
        *,
        status: int | None = None,
        title: str | None = None,
        type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(None, detail=detail, status=status or "")
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.retry_after = retry_after

    def describe(self) -> str:
        """One line for logs and the CLI: status, title, detail."""
        parts = [str(self.status)] if self.status else []
        parts += [p for p in (self.title, self.detail) if p]
        return " ".join(parts) or type(self).__name__


class AuthenticationError(ReplicateError):
    key = "replicate.unauthenticated"


class InsufficientCreditError(ReplicateError):
    key = "replicate.no_credit"


class NotFoundError(ReplicateError):
    key = "replicate.not_found"


class InvalidInputError(ReplicateError):
    """422: the API refused the input; `invalid_fields` says which."""

    key = "replicate.invalid_input"

    def __init__(self, detail: str = "", *, invalid_fields: list[dict[str, Any]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.invalid_fields = invalid_fields or []
        self.params["fields"] = ", ".join(
            str(f.get("field", "")).removeprefix("input.") for f in self.invalid_fields
        ) or detail.strip()


class RateLimitedError(ReplicateError):
    key = "replicate.rate_limited"


class ServerError(ReplicateError):
    key = "replicate.unavailable"


class TransportError(ReplicateError):
    """No usable answer: connection refused or reset, time-out, or a body that is not JSON.
    `sent` is False only when the request provably never left (the connection was refused)."""

    key = "replicate.unavailable"

    def __init__(self, detail: str = "", *, sent: bool = True, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.sent = sent


class AnswerTooLarge(ReplicateError):
    """An answer larger than we read: a broken or hostile relay. Not worth retrying."""

    key = "replicate.answer_too_large"


class Stopping(ReplicateError):
    """The bot is stopping: it creates nothing new."""

    key = "check.shutting_down"


class PredictionError(ReplicateError):
    """The prediction itself ended without images."""

    def __init__(self, prediction: Prediction, detail: str = "") -> None:
        detail = detail or (prediction.error or "")
        super().__init__(detail if len(detail) <= 300 else detail[:297] + "...")
        self.prediction = prediction


class ModelError(PredictionError):
    """Status `failed`: the model raised; `detail` is its `error` text."""

    key = "replicate.failed"

    def __init__(self, prediction: Prediction) -> None:
        super().__init__(prediction)
        error = (prediction.error or "").lower()
        if "nsfw" in error or "flagged as sensitive" in error:
            self.key = "replicate.nsfw"
        elif "invalid lora" in error or ("lora" in error and "download" in error):
            self.key = "replicate.lora_failed"


class PredictionCanceled(PredictionError):
    """Status `canceled` or `aborted`."""

    key = "replicate.canceled"


class PredictionTimeout(PredictionError):
    """Our deadline passed; the prediction was canceled."""

    key = "replicate.timeout"


class OutputError(ReplicateError):
    """An output file could not be delivered."""

    key = "replicate.output_failed"


class OutputGone(OutputError):
    """404/410 or `data_removed`: Replicate deleted the files (they live one hour)."""

    key = "replicate.output_gone"


class OutputTooLarge(OutputError):
    key = "replicate.output_too_large"


class OutputNotImage(OutputError):
    key = "replicate.output_not_image"


def may_have_created(error: ReplicateError) -> bool:
    """Whether a failed create may still have made a prediction: the request left and no
    answer said otherwise (a reset, a time-out, a 5xx from a proxy in front of the API)."""
    return (isinstance(error, TransportError) and error.sent) or isinstance(error, ServerError)


_BY_STATUS: dict[int, type[ReplicateError]] = {
    401: AuthenticationError,
    402: InsufficientCreditError,
    403: AuthenticationError,
    404: NotFoundError,
    422: InvalidInputError,
    429: RateLimitedError,
}

_WAIT_IN_DETAIL = re.compile(r"~\s*(\d+(?:\.\d+)?)\s*s\b")


def retry_after_from(headers: Any, detail: str) -> float | None:
    """Seconds the server asked us to wait: `Retry-After` (seconds or an HTTP date), else the
    `~Ns` Replicate writes in a 429's detail."""
    value = headers.get("Retry-After") if headers is not None else None
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            from datetime import UTC, datetime
            from email.utils import parsedate_to_datetime

            try:
                when = parsedate_to_datetime(value)
                return max(0.0, (when - datetime.now(UTC)).total_seconds())
            except (TypeError, ValueError):
                pass
    match = _WAIT_IN_DETAIL.search(detail or "")
    return float(match.group(1)) if match else None


def error_from_response(status: int, body: bytes, headers: Any = None) -> ReplicateError:
    """Build the typed error for a non-2xx answer; HTML or empty bodies are fine."""
    data: dict[str, Any] = {}
    try:
        parsed = json.loads(body) if body else {}
        if isinstance(parsed, dict):
            data = parsed
    except (ValueError, UnicodeDecodeError):
        pass
    detail = str(data.get("detail") or "")
    if not data and body:
        snippet = body[:200].decode("utf-8", "replace")
        detail = "non-JSON body" if snippet.lstrip().startswith("<") else snippet.strip()
    title = str(data.get("title") or "") or None
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ReplicateError)
    kwargs: dict[str, Any] = {
        "status": status,
        "title": title,
        "type": data.get("type"),
        "retry_after": retry_after_from(headers, detail),
    }
    if cls is InvalidInputError:
        fields = data.get("invalid_fields")
        return InvalidInputError(
            detail, invalid_fields=fields if isinstance(fields, list) else None, **kwargs
        )
    return cls(detail, **kwargs)
