"""The scrubber: credential values masked in text and in JSON-like values."""

from __future__ import annotations

import base64

from fulmen.runtime.scrub import MASK, Scrubber

CREDENTIAL = {
    "username": "admin-user",
    "password": "p@ss.w*rd(1)",
    "pin": 987654,
    "nested": {"api": {"key": "nested-key-value"}, "list": ["list-secret"]},
    "short": "abc",
    "flag": True,
    "port": 443,
}


def test_no_credentials_means_nothing_to_mask() -> None:
    scrubber = Scrubber([])
    assert not scrubber
    assert scrubber.text("admin-user p@ss.w*rd(1)") == "admin-user p@ss.w*rd(1)"
    value = {"a": ["b"]}
    assert scrubber.value(value) is value


def test_every_string_and_number_of_a_credential_is_masked_in_text() -> None:
    scrubber = Scrubber([CREDENTIAL])
    assert scrubber
    text = "user admin-user pw p@ss.w*rd(1) pin 987654 key nested-key-value item list-secret"
    assert scrubber.text(text) == f"user admin-user pw {MASK} pin {MASK} key {MASK} item {MASK}"


def test_regex_characters_in_a_secret_are_taken_literally() -> None:
    scrubber = Scrubber([{"password": "a.b*c+"}])
    assert scrubber.text("aXbbbc+ a.b*c+") == f"aXbbbc+ {MASK}"


def test_values_shorter_than_four_characters_are_not_masked() -> None:
    scrubber = Scrubber([CREDENTIAL])
    assert scrubber.text("abc 443 True true") == "abc 443 True true"


def test_the_basic_auth_form_is_masked() -> None:
    scrubber = Scrubber([{"username": "bob", "password": "pw"}])
    token = base64.b64encode(b"bob:pw").decode()
    assert scrubber.text(f"Authorization: Basic {token}") == f"Authorization: Basic {MASK}"
    # The parts themselves are too short to mask on their own.
    assert scrubber.text("bob pw") == "bob pw"


def test_the_longest_secret_is_masked_whole() -> None:
    scrubber = Scrubber([{"a": "secret"}, {"b": "secret-longer"}])
    assert scrubber.text("secret-longer secret") == f"{MASK} {MASK}"


def test_several_credentials_are_all_masked() -> None:
    scrubber = Scrubber([{"token": "first-token"}, {"token": "second-token"}])
    assert scrubber.text("first-token second-token") == f"{MASK} {MASK}"


def test_values_are_masked_in_keys_and_strings_at_any_depth() -> None:
    scrubber = Scrubber([CREDENTIAL])
    value = {
        "data": {
            "seen": ["x p@ss.w*rd(1) y", ("nested-key-value",)],
            "nested-key-value": 1,
            "ok": None,
            "flag": True,
        }
    }
    assert scrubber.value(value) == {
        "data": {
            "seen": [f"x {MASK} y", [MASK]],
            MASK: 1,
            "ok": None,
            "flag": True,
        }
    }
    assert value["data"]["seen"][0] == "x p@ss.w*rd(1) y"  # the original is untouched


def test_values_that_locate_a_service_are_not_masked() -> None:
    scrubber = Scrubber(
        [
            {
                "baseUrl": "https://api.example.org",
                "Host": "db.internal",
                "username": "svc-user",
                "password": "hunter2-long",
            }
        ]
    )
    text = "GET https://api.example.org/x as svc-user on db.internal with hunter2-long"
    assert (
        scrubber.text(text)
        == f"GET https://api.example.org/x as svc-user on db.internal with {MASK}"
    )
    # ...but their Basic-auth form is a secret.
    token = base64.b64encode(b"svc-user:hunter2-long").decode()
    assert scrubber.text(token) == MASK
