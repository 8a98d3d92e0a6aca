"""The Replicate predictions API: client, prediction model, typed errors, output downloads."""

from bot.replicate.client import ReplicateClient, ensure_succeeded
from bot.replicate.errors import ReplicateError
from bot.replicate.outputs import OutputFile, Outputs, download_outputs
from bot.replicate.prediction import TERMINAL, Prediction, Progress

__all__ = [
    "TERMINAL",
    "OutputFile",
    "Outputs",
    "Prediction",
    "Progress",
    "ReplicateClient",
    "ReplicateError",
    "download_outputs",
    "ensure_succeeded",
]
