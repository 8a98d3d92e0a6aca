"""The predictions the benchmark runs: like the real API, outputs show while still
`processing` and `succeeded` follows shortly."""

from __future__ import annotations

from tests.fakes.replicate_server import Scenario


def scenario(duration: float) -> Scenario:
    return Scenario(duration=duration, frames=6, output_while_processing=True,
                    finish_lag=0.05)
