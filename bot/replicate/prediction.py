"""A prediction as the API returns it, and the progress read from its growing logs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})

# tqdm's bar, perhaps after a name ("flux_train_replicate:  12%|█▏ | 120/1000 [01:23<10:12")
_BAR = re.compile(r"^(?:[\w.-]+:)?\s*(\d+)%\s*\|.*?\|\s*(\d+)/(\d+)(?:\s*\[[\d:]+<([\d:]+))?")
_SEED = re.compile(r"Using seed:\s*(\d+)")
_LINES = re.compile(r"[\r\n]+")


@dataclass(frozen=True)
class Progress:
    """Where the model is: tqdm step and total, percent, the time tqdm expects is left
    (seconds), and the seed once it is logged."""

    step: int | None = None
    total: int | None = None
    percent: int | None = None
    seed: int | None = None
    remaining: float | None = None

    @classmethod
    def from_logs(cls, logs: str | None) -> Progress:
        if not logs:
            return cls()
        seed_match = _SEED.search(logs)
        seed = int(seed_match.group(1)) if seed_match else None
        for line in reversed(_LINES.split(logs)):
            bar = _BAR.match(line)
            if bar:
                percent, step, total = (int(g) for g in bar.groups()[:3])
                return cls(step=step, total=total, percent=percent, seed=seed,
                           remaining=_seconds(bar.group(4)))
        return cls(seed=seed)


def _seconds(clock: str | None) -> float | None:
    """tqdm's `MM:SS` or `H:MM:SS` as seconds."""
    if not clock:
        return None
    total = 0
    for part in clock.split(":"):
        total = total * 60 + int(part)
    return float(total)


@dataclass(frozen=True)
class Prediction:
    """The fields of a prediction we use; `raw` keeps the rest."""

    id: str
    status: str
    output: list[str] = field(default_factory=list)
    error: str | None = None
    logs: str = ""
    data_removed: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    version: str = ""
    input: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prediction:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ValueError("not a prediction")
        output = data.get("output")
        if output is None:
            outputs: list[str] = []
        elif isinstance(output, str):
            outputs = [output]
        elif isinstance(output, list):
            outputs = [o for o in output if isinstance(o, str)]
        else:
            outputs = []
        error = data.get("error")
        return cls(
            id=data["id"],
            status=str(data.get("status") or "starting"),
            output=outputs,
            error=None if error is None else str(error),
            logs=data.get("logs") or "",
            data_removed=bool(data.get("data_removed")),
            metrics=data.get("metrics") if isinstance(data.get("metrics"), dict) else {},
            created_at=data.get("created_at"),
            started_at=data.get("started_at"),
            completed_at=data.get("completed_at"),
            version=str(data.get("version") or ""),
            input=data.get("input") if isinstance(data.get("input"), dict) else {},
            raw=data,
        )

    @property
    def terminal(self) -> bool:
        """Finished for good. Unknown statuses are not terminal: the deadline bounds them."""
        return self.status in TERMINAL

    @property
    def progress(self) -> Progress:
        return Progress.from_logs(self.logs)

    @property
    def weights(self) -> str | None:
        """A training's result: the URL of its weights (`output.weights`)."""
        output = self.raw.get("output")
        weights = output.get("weights") if isinstance(output, dict) else None
        return weights if isinstance(weights, str) else None

    @property
    def predict_time(self) -> float | None:
        value = self.metrics.get("predict_time")
        return float(value) if isinstance(value, int | float) else None
