"""A prediction only moves forward, whatever order its pushes come in."""

from __future__ import annotations

import asyncio
import itertools

from bot.replicate.prediction import Prediction
from bot.replicate.pushed import Pushed, newer


def p(status: str, output: int = 0, logs: str = "") -> Prediction:
    return Prediction(id="p1", status=status, output=[f"u{i}" for i in range(output)],
                      logs=logs)


def test_status_outputs_and_logs_order_the_pushes():
    order = [p("starting"), p("processing"), p("processing", logs="10%"),
             p("processing", output=1), p("succeeded", output=1)]
    for before, after in itertools.pairwise(order):
        assert newer(before, after) and not newer(after, before)
    assert not newer(p("succeeded", 1), p("processing", 4, "100%"))  # an end is an end
    assert not newer(p("canceled"), p("succeeded", 1))
    assert newer(None, p("starting"))


def test_a_late_or_repeated_push_does_not_move_a_prediction_back():
    pushed = Pushed(clock=lambda: 0.0)
    assert pushed.offer(p("succeeded", 1))
    assert not pushed.offer(p("processing", logs="50%"))  # a logs event, delivered late
    assert not pushed.offer(p("succeeded", 1))  # a retry
    assert pushed.merge(p("processing")).status == "succeeded"


def test_a_get_further_along_than_the_pushes_wins():
    pushed = Pushed(clock=lambda: 0.0)
    pushed.offer(p("processing"))
    fetched = p("succeeded", 1)
    assert pushed.merge(fetched) is fetched


async def test_a_follower_wakes_on_the_push_and_times_out_without_one():
    pushed = Pushed()
    waiting = asyncio.ensure_future(pushed.next(p("starting"), within=30))
    await asyncio.sleep(0)
    assert pushed.followed("p1")
    pushed.offer(p("processing", logs="5%"))
    got = await asyncio.wait_for(waiting, 5)
    assert got is not None and got.logs == "5%"
    assert not pushed.followed("p1")
    assert await pushed.next(got, within=0) is None  # nothing new: the caller asks the API


async def test_a_poke_sends_the_follower_to_the_api_and_unfollowed_pushes_are_forwarded():
    pushed = Pushed()
    forwarded: list[str] = []
    pushed.forward = lambda prediction: forwarded.append(prediction.status)
    pushed.offer(p("processing"))  # nobody follows it here
    assert forwarded == ["processing"]
    pushed.offer(Prediction(id="p2", status="processing"), forwarded=True)
    assert forwarded == ["processing"]  # a forwarded push is not sent on again
    waiting = asyncio.ensure_future(pushed.next(p("processing"), within=30))
    await asyncio.sleep(0)
    pushed.poke("p1")
    assert await asyncio.wait_for(waiting, 5) is None


def test_pushes_nobody_followed_are_forgotten_after_a_while():
    now = [0.0]
    pushed = Pushed(clock=lambda: now[0])
    pushed.offer(p("processing"))
    now[0] = 601.0  # past KEEP
    pushed.offer(Prediction(id="p2", status="processing"))
    fresh = p("starting")
    assert pushed.merge(fresh) is fresh  # p1's old push is gone
    assert pushed.merge(Prediction(id="p2", status="starting")).status == "processing"
