"""Finding a prediction whose id never reached us: a create whose answer was lost (a crash, a
reset, a cancel while `Prefer: wait` held it) is looked for in the account's list, matched on the
version and the input (the bot sends a seed of its own choosing, so no two jobs share one) and
on the time the create left."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from bot.replicate.client import ReplicateClient
from bot.replicate.errors import TransportError
from bot.replicate.prediction import Prediction

CLOCK_SKEW = 120.0  # seconds our clock and Replicate's may disagree, when matching creates


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def list_predictions(client: ReplicateClient, created_after: float,
                           created_before: float, max_pages: int = 20,
                           collection: str = "predictions") -> AsyncIterator[Prediction]:
    """The account's predictions created in a window (Unix seconds), newest first.
    `next` names the upstream host even behind a relay: only its query is kept."""
    query = urlencode({"created_after": _iso(created_after),
                       "created_before": _iso(created_before)})
    if collection != "predictions":  # GET /trainings takes no window: its newest pages
        query, max_pages = "", min(max_pages, 3)
    for _ in range(max_pages):
        url = client.url(collection) + (f"?{query}" if query else "")
        data = await client.send("GET", url,
                                 idempotent=True, headers=client.auth_headers())
        if not isinstance(data, dict) or not isinstance(data.get("results"), list):
            raise TransportError(f"unexpected answer to GET {collection}")
        for item in data["results"]:
            try:
                yield Prediction.from_json(item)
            except ValueError:
                continue
        following = data.get("next")
        if not isinstance(following, str) or not urlsplit(following).query:
            return
        query = urlsplit(following).query


async def find_created(client: ReplicateClient, input: dict[str, Any], sent_at: float, *,
                       version: str | None = None, match_image: bool = False,
                       taken: Collection[str] = (), collection: str = "predictions"
                       ) -> Prediction | None:
    """The prediction made by a create of `input` sent at `sent_at` (Unix seconds) whose
    answer never came back (a crash, a reset, a cancel while `Prefer: wait` held it).
    Matched on the version (`owner/name:id`, default the client's) and every input value but
    the image, which Replicate may have replaced by a file of its own: the bot sends a seed of
    its own choosing, so two jobs never share an input. A kind of job without a seed (an
    upscale) matches the image too (`match_image`, unless it was a `data:` URI) and skips the
    predictions other jobs own (`taken`): two alike upscales then get one prediction each.
    A training is looked for in the account's trainings (`collection`)."""
    ref = version or client.version_ref
    held = client.wait_seconds + client.request_timeout
    matched_image = match_image and not str(input.get("image", "")).startswith("data:")
    wanted = {k: v for k, v in input.items() if k != "image" or matched_image}
    async for prediction in list_predictions(client, sent_at - CLOCK_SKEW,
                                             sent_at + held + CLOCK_SKEW,
                                             collection=collection):
        if prediction.version not in (ref.partition(":")[2], ref) or prediction.id in taken:
            continue
        if all(prediction.input.get(k) == v for k, v in wanted.items()):
            return prediction
    return None
