"""Backoff arithmetic and the server's hints, without waiting."""

import pytest

from bot.replicate.errors import RateLimitedError, ServerError, error_from_response
from bot.replicate.retry import PollPolicy, RetryPolicy


def test_backoff_doubles_with_jitter_up_to_the_cap():
    policy = RetryPolicy(base=0.5, cap=20)
    lows = [policy.delay(n, None, lambda: 0.0) for n in range(1, 9)]
    highs = [policy.delay(n, None, lambda: 1.0) for n in range(1, 9)]
    assert lows == [0.25, 0.5, 1, 2, 4, 8, 10, 10]
    assert highs == [0.5, 1, 2, 4, 8, 16, 20, 20]


def test_a_hint_wins_and_is_spread_a_little():
    policy = RetryPolicy()
    assert policy.delay(1, 30, lambda: 0.0) == 30
    assert policy.delay(1, 30, lambda: 1.0) == pytest.approx(33)
    assert policy.delay(1, 10_000, lambda: 0.0) == policy.max_hint


def test_poll_intervals_grow_to_the_cap():
    poll = PollPolicy()
    intervals = [poll.interval(n) for n in range(10)]
    assert intervals[0] == 0.25 and intervals == sorted(intervals) and intervals[-1] == 2.0
    assert poll.interval(5, has_output=True) == 0.1


def test_retry_after_header_and_detail():
    error = error_from_response(429, b'{"detail":"Request was throttled. Your rate limit '
                                     b'resets in ~30s.","status":429}', {})
    assert isinstance(error, RateLimitedError) and error.retry_after == 30
    error = error_from_response(429, b"{}", {"Retry-After": "4"})
    assert error.retry_after == 4
    error = error_from_response(429, b"{}", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert error.retry_after == 0  # a date in the past: retry now


def test_html_and_empty_5xx_bodies():
    error = error_from_response(503, b"<html><body>Service Unavailable</body></html>", {})
    assert isinstance(error, ServerError) and error.detail == "non-JSON body"
    assert isinstance(error_from_response(500, b"", {}), ServerError)
    assert error_from_response(504, b"upstream timed out", {}).detail == "upstream timed out"
