"""The scrubber: credential values masked in text and in JSON-like values."""

from __future__ import annotations

import base64
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest

from fulmen.scrub import MASK, MIN_SECRET_LENGTH, Scrubber, short_values

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


# -- encoded forms (issue 13) ---------------------------------------------------------------

SECRET = "s3cr3t/k3y+v@lue"


@pytest.mark.parametrize(
    "form",
    [
        base64.b64encode(SECRET.encode()).decode(),
        base64.b64encode(SECRET.encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
        SECRET.encode().hex(),
        SECRET.encode().hex().upper(),
        quote(SECRET, safe=""),
        quote(SECRET),
        quote_plus(SECRET),
    ],
    ids=[
        "base64",
        "base64-unpadded",
        "base64url",
        "base64url-unpadded",
        "hex",
        "HEX",
        "percent",
        "percent-keeping-slash",
        "percent-plus",
    ],
)
def test_an_encoded_form_of_a_secret_is_masked(form: str) -> None:
    assert form != SECRET
    scrubber = Scrubber([{"token": SECRET}])
    assert scrubber.text(f"sent {form} away") == f"sent {MASK} away"
    assert scrubber.value({"headers": {"x-key": form}}) == {"headers": {"x-key": MASK}}


@pytest.mark.parametrize("prefix", [b"", b"a", b"ab", b"abc"], ids=["at-0", "at-1", "at-2", "at-3"])
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_a_secret_inside_a_longer_base64_text_is_masked_at_any_offset(
    prefix: bytes, encode: Callable[[bytes], bytes]
) -> None:
    blob = encode(prefix + b'{"token": "' + SECRET.encode() + b'"}').decode()
    masked = Scrubber([{"token": SECRET}]).text(blob)
    assert MASK in masked
    # What is left of the blob around the mask decides at most two characters of the secret.
    assert len(blob) - len(masked.replace(MASK, "")) >= len(SECRET) * 4 // 3 - 2


def test_the_encoded_forms_of_a_short_secret_are_not_masked_either() -> None:
    scrubber = Scrubber([{"pin": "abc"}])
    assert not scrubber
    assert scrubber.text("YWJj 616263") == "YWJj 616263"


def test_a_secret_of_several_lines_is_masked_line_by_line() -> None:
    key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n-----END KEY-----"
    scrubber = Scrubber([{"private_key": key}])
    assert scrubber.text(key) == MASK
    assert scrubber.text("MIIEvQIBADANBgkqhkiG9w0B") == MASK


# -- values short enough to be left alone ----------------------------------------------------


def test_short_values_names_every_field_left_unmasked() -> None:
    credential = {
        "username": "al",  # not a secret anyway
        "password": "pw",
        "pin": 123,
        "nested": {"otp": "9"},
        "list": ["ok-long-value", "no"],
        "empty": "",
        "flag": True,
    }
    assert short_values(credential) == ["password", "pin", "nested.otp", "list[1]"]
    assert MIN_SECRET_LENGTH == 4


# -- a secret split across two lines (runtime/logs.py) ---------------------------------------


def test_continues_says_whether_a_line_ends_with_the_start_of_a_secret() -> None:
    scrubber = Scrubber([{"token": "hunter22-token"}])
    assert scrubber.continues("the key is hunt")
    assert scrubber.continues("h")
    assert not scrubber.continues("the key is hunter22-token")  # a whole secret: masked
    assert not scrubber.continues("nothing here")
    assert not Scrubber([]).continues("h")


@pytest.mark.parametrize("cut", range(1, len("hunter22-token")))
def test_across_finds_a_secret_split_at_any_point(cut: int) -> None:
    secret = "hunter22-token"
    scrubber = Scrubber([{"token": secret}])
    first, second = f"key: {secret[:cut]}", f"{secret[cut:]} (done)"
    tail, head = scrubber.across(first, second)
    assert (tail, head) == (cut, len(secret) - cut)
    assert scrubber.mask(first, tail=tail) == f"key: {MASK}"
    assert scrubber.mask(second, head=head) == f"{MASK} (done)"


def test_across_finds_nothing_in_lines_that_do_not_join_into_a_secret() -> None:
    scrubber = Scrubber([{"token": "hunter22-token"}])
    assert scrubber.across("key: hunter", "s are here") == (0, 0)
    assert scrubber.across("hunter22-token", "hunter22-token") == (0, 0)


def test_mask_merges_a_split_part_with_a_whole_secret_it_touches() -> None:
    scrubber = Scrubber([{"a": "hunter22-token"}, {"b": "other-secret"}])
    assert scrubber.mask("other-secret and hunt", tail=4) == f"{MASK} and {MASK}"
    assert scrubber.mask("er22-token other-secret", head=10) == f"{MASK} {MASK}"
    assert scrubber.mask("hunter22-token", tail=3) == MASK
