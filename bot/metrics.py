"""Prometheus metrics: what an owner watches on a small VPS next to a paid API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class Metrics:
    """One registry per bot, so tests (and two bots in one process) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.generations = Counter("fluxbot_generations", "Jobs ended, by kind (imagine, "
                                   "upscale) and outcome", ["kind", "outcome"], registry=r)
        self.images = Counter("fluxbot_images_delivered", "Images posted", registry=r)
        self.credits_spent = Counter("fluxbot_credits_spent", "Credits charged", registry=r)
        self.credits_refunded = Counter("fluxbot_credits_refunded", "Credits given back",
                                        registry=r)
        self.jobs_queued = Gauge("fluxbot_jobs_queued", "Jobs waiting for a slot", registry=r)
        self.jobs_in_flight = Gauge("fluxbot_jobs_in_flight", "Jobs running", registry=r)
        self.replicate_seconds = Histogram(
            "fluxbot_replicate_request_seconds", "Replicate API request latency",
            ["method", "endpoint"], registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 90))
        self.loop_lag = Histogram(
            "fluxbot_event_loop_lag_seconds", "How late the event loop ran a timer: a busy "
            "loop makes every member wait", registry=r,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.replicate_errors = Counter(
            "fluxbot_replicate_errors", "Replicate API answers that were not 2xx, by status "
            "(0: no answer)", ["status"], registry=r)

        self.pacing_wait = Histogram(
            "fluxbot_replicate_pacing_wait_seconds", "How long a request waited for the "
            "account's rate (create: 600 a minute; call: 3,000), by kind", ["kind"],
            registry=r, buckets=(0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60))

        self.webhooks = Counter("fluxbot_replicate_webhooks", "Webhooks received, by outcome "
                                "(accepted, duplicate, stale event, or why refused)",
                                ["outcome"], registry=r)

    def webhook(self, outcome: str) -> None:
        self.webhooks.labels(outcome).inc()

    def paced(self, kind: str, pace: Callable[[], Awaitable[float]]
              ) -> Callable[[], Awaitable[float]]:
        """`pace`, its waits counted under `kind`."""
        histogram = self.pacing_wait.labels(kind)

        async def counted() -> float:
            wait = await pace()
            histogram.observe(wait)
            return wait

        return counted

    def watch_database(self, trips: Callable[[], int]) -> None:
        """`fluxbot_database_trips_total`: each a thread hop or a round trip (what a job
        costs the database, whatever else is in the queue)."""

        class Trips(Collector):
            def collect(self) -> Iterator[CounterMetricFamily]:
                yield CounterMetricFamily("fluxbot_database_trips", "Calls that went to the "
                                          "database (one per transaction)", value=trips())

        self.registry.register(Trips())

    def watch_queue(self, queued: Callable[[], int], running: Callable[[], int]) -> None:
        self.jobs_queued.set_function(queued)
        self.jobs_in_flight.set_function(running)

    def replicate_request(self, method: str, url: str, status: int | None,
                          seconds: float) -> None:
        """The Replicate client's observer: latency by endpoint, errors by status."""
        path = urlsplit(url).path
        endpoint = ("cancel" if path.endswith("/cancel") else "predictions"
                    if "/predictions" in path else "file")
        self.replicate_seconds.labels(method, endpoint).observe(seconds)
        if status is None or status >= 400:
            self.replicate_errors.labels(str(status or 0)).inc()

    async def watch_loop_lag(self, interval: float = 0.05) -> None:
        """Run forever: how much later than asked the loop wakes a sleeper."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(interval)
            self.loop_lag.observe(max(0.0, loop.time() - started - interval))

    def job_ended(self, kind: str, outcome: str, delivered: int, charged: int,
                  refunded: int) -> None:
        self.generations.labels(kind, outcome).inc()
        self.images.inc(delivered)
        self.credits_spent.inc(charged)
        self.credits_refunded.inc(refunded)
