"""The outbound destination policy's decisions (fulmen.outbound): which addresses a project
admin's URL may not reach, the address forms a resolver takes, the operator's allowances, and
the refusal when a URL is saved."""

from __future__ import annotations

import ipaddress

import pytest

from fulmen.config import CoordinatorSettings
from fulmen.errors import ConfigError, InputError
from fulmen.outbound import VARIABLE, Policy, address_refusal, literal_address


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "unique-local"),
        ("fc00::1", "unique-local"),
        ("fec0::1", "site-local"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "special-purpose"),
        ("198.18.0.1", "special-purpose"),
        ("2001:db8::1", "special-purpose"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ("64:ff9b:1::1", "NAT64"),
        # IPv6 forms that carry an internal IPv4 address
        ("::ffff:127.0.0.1", "loopback address (this host), in IPv6 form"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:0:a00:1", "private"),
        ("::127.0.0.1", "loopback"),
        ("2002:7f00:1::", "loopback"),
        ("2002:a9fe:a9fe::1", "link-local"),
        ("64:ff9b::a00:1", "private"),
        ("::1:2", "in IPv6 form"),
    ],
)
def test_internal_addresses_are_refused_saying_what_they_are(address: str, words: str) -> None:
    why = address_refusal(ipaddress.ip_address(address))
    assert why is not None and words in why


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "2002:808:808::1",
        "64:ff9b::808:808",
    ],
)
def test_global_addresses_pass(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
        ("[fe80::1%eth0]", "fe80::1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0177.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.258", "10.0.1.2"),
        ("169.254.43518", "169.254.169.254"),
        ("127.0.0.1.", "127.0.0.1"),
    ],
)
def test_every_form_a_resolver_takes_as_an_address_is_read_as_one(host: str, address: str) -> None:
    assert literal_address(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize(
    "host", ["example.org", "localhost", "1.2.3.4.5", "256.1.1.1", "08.1.1.1", "0x", "1e3", ""]
)
def test_names_are_no_addresses(host: str) -> None:
    assert literal_address(host) is None


def test_an_allowance_lets_through_exactly_what_it_names() -> None:
    policy = Policy.of(
        ["127.0.0.1:8080", "hooks.internal", "10.20.0.0/16", "[fd00::1]:443", "Relay.Corp.:25"]
    )
    loopback = [ipaddress.ip_address("127.0.0.1")]
    assert policy.refusal("127.0.0.1", 8080, loopback) is None
    assert policy.refusal("127.0.0.1", 8081, loopback) is not None  # not that port
    assert policy.refusal("127.0.0.2", 8080, [ipaddress.ip_address("127.0.0.2")]) is not None
    # a name allowed is allowed whatever it resolves to (the operator's DNS), on any port
    assert policy.refusal("hooks.internal", 9000, loopback) is None
    assert policy.refusal("HOOKS.internal.", 9000, loopback) is None
    assert policy.refusal("relay.corp", 25, loopback) is None
    assert policy.refusal("relay.corp", 26, loopback) is not None
    assert policy.refusal("other.internal", 9000, loopback) is not None
    inside = [ipaddress.ip_address("10.20.3.4")]
    assert policy.refusal("db.corp", 5432, inside) is None
    assert policy.refusal("db.corp", 5432, [ipaddress.ip_address("10.21.0.1")]) is not None
    assert policy.refusal("fd00::1", 443, [ipaddress.ip_address("fd00::1")]) is None
    assert policy.refusal("fd00::1", 80, [ipaddress.ip_address("fd00::1")]) is not None


def test_one_internal_address_among_public_ones_refuses_the_name() -> None:
    mixed = [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("169.254.169.254")]
    why = Policy().refusal("mixed.example", 443, mixed)
    assert why is not None
    assert "mixed.example (169.254.169.254) is a link-local address" in why
    assert VARIABLE in why
    assert Policy().refusal("example.org", 443, mixed[:1]) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/h",
        "http://[::1]:8080/h",
        "https://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/h",
        "http://[::ffff:127.0.0.1]/h",
        "http://0.0.0.0:4000/h",
        "http://2130706433/h",
        "http://0x7f.1/h",
        "http://0177.0.0.1/h",
        "http://localhost:4000/h",
        "http://LOCALHOST./h",
        "http://api.localhost/h",
        "http://[fe80::1%25eth0]/h",
    ],
)
def test_a_url_naming_an_internal_address_is_refused_when_saved(url: str) -> None:
    with pytest.raises(InputError) as refused:
        Policy().check_url(url, "url")
    assert refused.value.code == "destination_refused" and refused.value.field == "url"
    assert "the operator can allow it with FULMEN_OUTBOUND_ALLOW" in refused.value.message


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example.org/h", "http://8.8.8.8/h", "https://[2606:4700::1]/", "nonsense"],
)
def test_public_urls_and_names_pass_when_saved(url: str) -> None:
    """Names are judged when sent, on what they resolve to; nonsense is the URL check's."""
    Policy().check_url(url, "url")


def test_the_port_of_a_saved_url_is_its_scheme_s_by_default() -> None:
    policy = Policy.of(["127.0.0.1:443"])
    policy.check_url("https://127.0.0.1/token", "token_url")
    with pytest.raises(InputError):
        policy.check_url("http://127.0.0.1/token", "token_url")


def test_the_setting_is_read_and_checked() -> None:
    read = CoordinatorSettings.from_env(
        {"FULMEN_OUTBOUND_ALLOW": " hooks.internal, 10.0.0.0/8 ,127.0.0.1:8080,[::1]:99,"}
    )
    assert read.outbound_allow == ("hooks.internal", "10.0.0.0/8", "127.0.0.1:8080", "[::1]:99")
    assert CoordinatorSettings.from_env({}).outbound_allow == ()
    for bad in ("http://hooks.internal/", "10.0.0.0/33", "host:99999", "[hooks]:80", "a b"):
        with pytest.raises(ConfigError) as refused:
            CoordinatorSettings.from_env({"FULMEN_OUTBOUND_ALLOW": bad})
        assert "FULMEN_OUTBOUND_ALLOW" in refused.value.message
