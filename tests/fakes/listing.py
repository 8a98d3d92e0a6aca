"""`GET /predictions` as the real API pages it: newest first, `created_after` and
`created_before` honoured, a page at a time, `next` naming the upstream host (as behind a
relay), and no logs in the list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from tests.fakes.predictions import FakePrediction


def page_of(predictions: Sequence[FakePrediction], query: Mapping[str, str], page_size: int,
            upstream: str) -> dict[str, Any]:
    def instant(name: str) -> float | None:
        value = query.get(name)
        if value is None:
            return None
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()

    after, before = instant("created_after"), instant("created_before")
    found = [p for p in reversed(list(predictions))
             if (after is None or p.created_unix >= after)
             and (before is None or p.created_unix <= before)]
    start = int(query.get("cursor", "0"))
    page = found[start:start + page_size]
    following = None
    if start + page_size < len(found):
        params = {k: v for k, v in query.items() if k != "cursor"}
        params["cursor"] = str(start + page_size)
        following = f"{upstream}/predictions?{urlencode(params)}"
    results = []
    for prediction in page:
        item = prediction.to_json()
        item["logs"] = ""  # the list carries no logs (or truncated ones)
        results.append(item)
    return {"next": following, "previous": None, "results": results}
