"""Standard Webhooks signatures, checked against the vector in the reference notes
(shared/reference/replicate-notes.md) and against each way a push can be wrong."""

from __future__ import annotations

import pytest

from bot.replicate.webhooks import SeenIds, WebhookRejected, sign, signing_key, verify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
STAMP = 1614265330
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers(signature: str = EXPECTED, stamp: int = STAMP, msg_id: str = MSG_ID
            ) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp),
            "webhook-signature": signature}


def test_the_reference_vector_signs_and_verifies():
    key = signing_key(SECRET)
    assert sign(key, MSG_ID, str(STAMP), BODY) == EXPECTED
    assert verify(key, headers(), BODY, now=STAMP + 10) == MSG_ID


def test_any_v1_entry_of_several_may_match():
    key = signing_key(SECRET)
    several = f"v1,Zm9vYmFy v2,{EXPECTED[3:]} {EXPECTED}"
    assert verify(key, headers(several), BODY, now=STAMP) == MSG_ID
    with pytest.raises(WebhookRejected, match="bad signature"):
        verify(key, headers(f"v1,Zm9vYmFy v2,{EXPECTED[3:]}"), BODY, now=STAMP)


@pytest.mark.parametrize(("change", "reason", "status"), [
    ({"secret": "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="}, "bad signature", 401),
    ({"now": STAMP + 301}, "stale", 401),
    ({"now": STAMP - 301}, "from the future", 401),
    ({"body": b'{"test": 2432232315}'}, "bad signature", 401),
    ({"headers": {"webhook-id": MSG_ID, "webhook-timestamp": str(STAMP)}}, "unsigned", 400),
    ({"headers": headers(stamp=0) | {"webhook-timestamp": "soon"}}, "malformed", 400),
    ({"headers": headers(msg_id="msg_other")}, "bad signature", 401),
])
def test_a_wrong_push_is_rejected_with_its_reason(change, reason, status):
    key = signing_key(change.get("secret", SECRET))
    with pytest.raises(WebhookRejected, match=reason) as caught:
        verify(key, change.get("headers", headers()), change.get("body", BODY),
               now=change.get("now", STAMP))
    assert caught.value.status == status


def test_the_edges_of_the_five_minute_window_are_inside():
    key = signing_key(SECRET)
    assert verify(key, headers(), BODY, now=STAMP + 300) == MSG_ID
    assert verify(key, headers(), BODY, now=STAMP - 300) == MSG_ID


def test_a_replayed_id_is_seen_once_until_it_ages_out():
    now = [0.0]
    seen = SeenIds(ttl=600, clock=lambda: now[0])
    assert seen.first_time(MSG_ID)
    assert not seen.first_time(MSG_ID)  # Replicate's retry of the same delivery
    assert seen.first_time("msg_other")
    now[0] = 601  # past the replay window, where the timestamp check refuses it anyway
    assert seen.first_time(MSG_ID)


def test_the_memory_of_ids_is_bounded():
    seen = SeenIds(limit=3, clock=lambda: 0.0)
    for n in range(10):
        assert seen.first_time(f"msg_{n}")
    assert len(seen._seen) <= 3


@pytest.mark.parametrize("secret", ["", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_",
                                    "whsec_not base64!", "whsec_c2hvcnQ="])
def test_a_secret_that_is_not_one_says_why(secret):
    with pytest.raises(ValueError):
        signing_key(secret)
