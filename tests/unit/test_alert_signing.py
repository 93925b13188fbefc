"""A webhook alert's signature, checked against the Standard Webhooks test vector and a
verifier written from the specification here rather than with fulmen's own code."""

from __future__ import annotations

import base64
import hashlib
import hmac

from fulmen.coordinator.alerts import signing

#: The example of the Standard Webhooks specification (and of its libraries' tests).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MESSAGE_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_specifications_example_signs_the_same() -> None:
    assert signing.signature(SECRET, MESSAGE_ID, TIMESTAMP, BODY) == EXPECTED


def test_headers_carry_id_timestamp_and_signature() -> None:
    headers = signing.headers(SECRET, "d-1", TIMESTAMP, BODY)
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"d-1.{TIMESTAMP}.".encode() + BODY, hashlib.sha256).digest()
    assert headers == {
        "webhook-id": "d-1",
        "webhook-timestamp": str(TIMESTAMP),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def test_verify_refuses_a_changed_body_a_wrong_secret_and_an_old_timestamp() -> None:
    headers = signing.headers(SECRET, "d-1", TIMESTAMP, BODY)
    assert signing.verify(SECRET, headers, BODY, TIMESTAMP + 10)
    assert not signing.verify(SECRET, headers, BODY + b" ", TIMESTAMP)
    other = "whsec_" + base64.b64encode(b"k" * 32).decode()
    assert not signing.verify(other, headers, BODY, TIMESTAMP)
    assert not signing.verify(SECRET, headers, BODY, TIMESTAMP + signing.TOLERANCE + 1)
    rotated = headers | {"webhook-signature": "v1,bm90IGl0 " + headers["webhook-signature"]}
    assert signing.verify(SECRET, rotated, BODY, TIMESTAMP)
