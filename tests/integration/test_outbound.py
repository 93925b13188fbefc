"""The outbound destination policy as attacks meet it (server-side request forgery): a project
admin's alert webhook URL or OAuth2 token URL aimed at this host or the internal network, with
real receivers on loopback that must receive nothing, and a real coordinator.

* The transport refuses at connect time every internal address, in every form the URL parser
  and the resolver take (IPv6 loopback, IPv4-mapped, decimal, hex, octal), and a name that
  resolves to one (``localhost`` by the system's resolver; a test name by a resolver of the
  test's own); the operator's allowance lets exactly what it names through, and the
  connection goes to the address that was checked, never to the name again.
* TLS checks the certificate for the URL's name, though the checked address is connected to.
* Redirects are not followed, to anywhere.
* Saving such a URL is refused at once (422 ``destination_refused``, naming the field, the
  host and the setting), through the API and the dashboard; nothing is stored.
* A name that resolves to an internal address is refused when sent: on the alert channel's
  delivery state, on the OAuth2 credential's problem (client credentials, when saved) and in
  its refresh's audit record.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fulmen.coordinator.alerts import AlertDispatcher
from fulmen.coordinator.alerts.messages import Message
from fulmen.coordinator.alerts.webhook import WebhookSender
from fulmen.coordinator.oauth2_client import token_request
from fulmen.coordinator.outbound_http import (
    DestinationRefused,
    Outbound,
    OutboundTransport,
    system_resolve,
)
from fulmen.errors import AlertError, CredentialError
from fulmen.outbound import Address, Policy
from fulmen.store import (
    AlertRule,
    AuditFilter,
    ChannelType,
    ClaimedDelivery,
    Grant,
    NewAlertChannel,
    NewCredential,
    OAuth2Secrets,
    OAuth2Settings,
    OAuth2Status,
)
from fulmen.store.alert_policy import DEFAULT_OUTCOMES, new_secret
from fulmen_testing.alerts import fail_run, webhook_receiver
from fulmen_testing.clock import FakeClock
from fulmen_testing.coordinator import seed
from fulmen_testing.oauth2_provider import CLIENT_ID, CLIENT_SECRET, oauth2_provider
from fulmen_testing.operator import site, store_at

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
LOOPBACK = ipaddress.ip_address("127.0.0.1")
#: Names only this module's resolver knows: the system's cannot resolve them, so a
#: connection that reaches the receiver went to the address the check saw. (Not
#: /etc/hosts: the resolver is the transport's hook.)
NAMES: dict[str, Sequence[Address]] = {
    "hooks.test": [LOOPBACK],
    "provider.test": [LOOPBACK],
    "mixed.test": [ipaddress.ip_address("93.184.215.14"), LOOPBACK],
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def resolve_names(host: str, port: int) -> Sequence[Address]:
    """This module's names, and the system's for the others (``localhost``)."""
    return NAMES[host] if host in NAMES else await system_resolve(host, port)


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def outbound(*allowed: str) -> Outbound:
    return Outbound(Policy.of(allowed), resolve=resolve_names)


def attacks(port: int) -> list[str]:
    """URLs that lead to this host or the internal network, in the forms an attacker tries."""
    return [
        f"http://127.0.0.1:{port}/hooks/fulmen",
        f"http://127.0.0.2:{port}/hooks/fulmen",
        f"http://[::1]:{port}/hooks/fulmen",
        f"http://[::ffff:127.0.0.1]:{port}/hooks/fulmen",
        f"http://[::ffff:7f00:1]:{port}/hooks/fulmen",
        f"http://0.0.0.0:{port}/hooks/fulmen",
        f"http://2130706433:{port}/hooks/fulmen",
        f"http://0x7f000001:{port}/hooks/fulmen",
        f"http://0177.0.0.1:{port}/hooks/fulmen",
        f"http://127.1:{port}/hooks/fulmen",
        f"http://localhost:{port}/hooks/fulmen",
        f"http://hooks.test:{port}/hooks/fulmen",
        f"http://mixed.test:{port}/hooks/fulmen",
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.1/admin",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
    ]


# -- the transport --------------------------------------------------------------------------


async def test_every_internal_destination_is_refused_when_connecting() -> None:
    async with webhook_receiver() as receiver:
        port = port_of(receiver.url)
        async with httpx2.AsyncClient(transport=outbound().transport()) as http:
            for url in attacks(port):
                if "0177." in url:  # httpx2 takes no octal address: nothing is sent either
                    with pytest.raises(httpx2.InvalidURL):
                        await http.post(url, content=b"{}")
                    continue
                with pytest.raises(DestinationRefused) as refused:
                    await http.post(url, content=b"{}")
                assert "the operator can allow it with FULMEN_OUTBOUND_ALLOW" in str(
                    refused.value
                ), url
        assert receiver.requests.empty()


async def test_a_name_s_refusal_names_the_address_it_resolved_to() -> None:
    async with httpx2.AsyncClient(transport=outbound().transport()) as http:
        with pytest.raises(DestinationRefused) as refused:
            await http.get("http://mixed.test:9/")
    assert str(refused.value).startswith("mixed.test (127.0.0.1) is a loopback address (this host)")


async def test_the_allowance_lets_exactly_the_allowed_destination_through() -> None:
    async with webhook_receiver() as receiver, webhook_receiver() as other:
        port = port_of(receiver.url)
        allowed = outbound(f"127.0.0.1:{port}")
        async with httpx2.AsyncClient(transport=allowed.transport()) as http:
            answer = await http.post(receiver.url, content=b"{}")
            assert answer.status_code == 200
            # a name resolved to the allowed address is connected to at that address: the
            # system's resolver does not know hooks.test
            answer = await http.post(f"http://hooks.test:{port}/hooks/fulmen", content=b"{}")
            assert answer.status_code == 200
            for url in (other.url, f"http://[::1]:{port}/", f"http://127.0.0.2:{port}/"):
                with pytest.raises(DestinationRefused):
                    await http.post(url, content=b"{}")
        first, second = receiver.requests.get_nowait(), receiver.requests.get_nowait()
        assert first.headers["host"] == f"127.0.0.1:{port}"
        assert second.headers["host"] == f"hooks.test:{port}"  # the name, as TLS would verify
        assert receiver.requests.empty() and other.requests.empty()


async def test_a_name_allowed_is_reached_whatever_it_resolves_to() -> None:
    async with webhook_receiver() as receiver:
        port = port_of(receiver.url)
        async with httpx2.AsyncClient(transport=outbound("hooks.test").transport()) as http:
            answer = await http.post(f"http://hooks.test:{port}/hooks/fulmen", content=b"{}")
            assert answer.status_code == 200
            with pytest.raises(DestinationRefused):
                await http.post(receiver.url, content=b"{}")  # its address is not allowed
        assert receiver.requests.qsize() == 1


@asynccontextmanager
async def redirecting(to: str) -> AsyncIterator[int]:
    """A server on loopback that answers every request with a 307 to ``to``; its port."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {to}\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def claimed(url: str) -> ClaimedDelivery:
    return ClaimedDelivery(
        id="d1",
        attempt=1,
        channel_id="c1",
        channel_name="pager",
        channel_type=ChannelType.WEBHOOK,
        recipients=(),
        url=url,
        secret=new_secret(bytes(32)),
        alert=None,  # type: ignore[arg-type]  # the sender reads only the message
    )


async def test_redirects_are_not_followed() -> None:
    async with webhook_receiver() as receiver:
        async with redirecting(receiver.url) as port:
            allowed = outbound("127.0.0.1")
            with pytest.raises(CredentialError) as refused:
                await token_request(
                    f"http://127.0.0.1:{port}/token", {"grant_type": "client_credentials"}, allowed
                )
            assert refused.value.code == "provider_unavailable"
            assert "(status 307)" in refused.value.message
            async with httpx2.AsyncClient(transport=allowed.transport()) as http:
                answer = await http.post(f"http://127.0.0.1:{port}/h", content=b"{}")
            assert answer.status_code == 307  # the transport sends one request, and answers
        assert receiver.requests.empty()


# -- the senders ---------------------------------------------------------------------------


async def test_the_token_request_to_an_internal_destination_is_refused_unsent() -> None:
    provider_form = {"grant_type": "client_credentials", "client_secret": "s3cret"}
    async with webhook_receiver() as receiver:
        port = port_of(receiver.url)
        for url in (f"https://provider.test:{port}/token", f"http://127.0.0.1:{port}/token"):
            with pytest.raises(CredentialError) as refused:
                await token_request(url, provider_form, outbound())
            assert refused.value.code == "destination_refused"
            assert f"the token URL {url} was not asked: " in refused.value.message
        assert receiver.requests.empty()


# -- a real coordinator ----------------------------------------------------------------------


async def test_saving_an_internal_url_is_refused_at_once(tmp_path: Path) -> None:
    async with store_at("sqlite", tmp_path) as (store, _), site(store, outbound_allow=()) as s:
        seeded = await seed(store)
        project = seeded.project_id
        for url in attacks(4000):
            answer = await s.http.post(
                f"/api/projects/{project}/alert_channels",
                headers=s.auth,
                json={"name": "pager", "type": "webhook", "url": url},
            )
            if "hooks.test" in url or "mixed.test" in url:
                assert answer.status_code == 201, answer.text  # a name: judged when sent
                await s.api(
                    "DELETE", f"/api/projects/{project}/alert_channels/{answer.json()['id']}", 204
                )
                continue
            assert answer.status_code == 422, (url, answer.text)
            error = answer.json()["error"]
            assert (error["code"], error["field"]) == ("destination_refused", "url"), url
            assert "FULMEN_OUTBOUND_ALLOW" in error["message"]
        assert await store.list_alert_channels(project) == []

        refused = await s.http.post(
            f"/api/projects/{project}/credentials/oauth2",
            headers=s.auth,
            json={
                "name": "partner",
                "grant": "client_credentials",
                "token_url": "http://127.0.0.1:4000/token",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        )
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert (error["code"], error["field"]) == ("destination_refused", "token_url")
        assert error["message"].startswith("127.0.0.1 is a loopback address (this host)")
        assert [c.name for c in await store.list_credentials(project)] == ["api"]


async def test_the_dashboard_refuses_an_internal_webhook_url(tmp_path: Path) -> None:
    async with store_at("sqlite", tmp_path) as (store, _), site(store, outbound_allow=()) as s:
        seeded = await seed(store)
        origin = {"Origin": s.served.base_url}
        signed = await s.http.post("/ui/login", data={"token": s.token}, headers=origin)
        assert signed.status_code == 303
        page = await s.http.post(
            f"/ui/alerts/projects/{seeded.project_id}/channels",
            data={"name": "pager", "type": "webhook", "url": "http://169.254.169.254/x"},
            headers=origin,
        )
        assert page.status_code == 422, page.text
        assert "169.254.169.254 is a link-local address" in page.text
        assert await store.list_alert_channels(seeded.project_id) == []


async def test_a_webhook_whose_name_resolves_inside_fails_on_its_channel(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    async with (
        store_at("sqlite", tmp_path, clock=clock) as (store, _),
        site(store, clock=clock, outbound_allow=()) as s,
        webhook_receiver() as receiver,
    ):
        port = port_of(receiver.url)
        seeded = await seed(store)
        project = seeded.project_id
        url = f"http://hooks.test:{port}/hooks/fulmen"
        hook = await s.api(
            "POST",
            f"/api/projects/{project}/alert_channels",
            201,
            json={"name": "pager", "type": "webhook", "url": url},
        )
        await store.put_alert_rule(
            AlertRule(seeded.workflow_id, project, DEFAULT_OUTCOMES, (hook["id"],))
        )
        # and one saved before the policy was (straight into the store), by the real resolver
        local = await store.create_alert_channel(
            NewAlertChannel(
                "local", project, "local", ChannelType.WEBHOOK, url=f"http://localhost:{port}/"
            )
        )
        await store.put_alert_rule(
            AlertRule(seeded.workflow_id, project, DEFAULT_OUTCOMES, (hook["id"], local.id))
        )
        await fail_run(store, seeded)
        c = s.served.coordinator
        c.outbound = outbound()
        tick = await AlertDispatcher(c).tick()
        assert len(tick.failed) == 2 and tick.sent == []
        health = (await s.api("GET", f"/api/projects/{project}/alert_channels/{hook['id']}"))[
            "health"
        ]
        assert health["last_error"] == (
            f"the webhook {url} was not sent: hooks.test (127.0.0.1) is a loopback address "
            "(this host): the coordinator does not send there for a project; the operator can "
            "allow it with FULMEN_OUTBOUND_ALLOW"
        )
        local_health = (await s.api("GET", f"/api/projects/{project}/alert_channels/{local.id}"))[
            "health"
        ]
        assert "localhost (" in local_health["last_error"]
        assert "is a loopback address" in local_health["last_error"]
        assert receiver.requests.empty()

        # the operator allows the receiver: the retry goes through to it, and only there
        c.outbound = outbound(f"127.0.0.1:{port}")
        clock.advance(minutes=5)
        again = await AlertDispatcher(c).tick()
        # (localhost too, when the host's resolver gives it no address but 127.0.0.1)
        assert len(again.sent) >= 1
        hosts = set()
        while not receiver.requests.empty():
            hosts.add(receiver.requests.get_nowait().headers["host"])
        assert f"hooks.test:{port}" in hosts and hosts <= {
            f"hooks.test:{port}",
            f"localhost:{port}",
        }


async def test_an_oauth2_token_url_whose_name_resolves_inside_is_its_problem(
    tmp_path: Path,
) -> None:
    async with (
        oauth2_provider() as provider,
        store_at("sqlite", tmp_path) as (store, _),
        site(store, outbound_allow=()) as s,
    ):
        seeded = await seed(store)
        s.served.coordinator.outbound = outbound()
        port = port_of(provider.token_url)
        saved = await s.api(
            "POST",
            f"/api/projects/{seeded.project_id}/credentials/oauth2",
            201,
            json={
                "name": "partner",
                "grant": "client_credentials",
                "token_url": f"https://provider.test:{port}/token",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        )
        assert saved["status"] == "not_connected"
        assert "provider.test (127.0.0.1) is a loopback address" in saved["problem"]
        assert "FULMEN_OUTBOUND_ALLOW" in saved["problem"]
        assert provider.requests == []


async def test_a_refresh_to_a_destination_no_longer_allowed_is_refused_and_recorded(
    tmp_path: Path,
) -> None:
    """Saved while the operator allowed it; the allowance gone, nothing is sent."""
    async with (
        oauth2_provider() as provider,
        store_at("sqlite", tmp_path) as (store, _),
        site(store, outbound_allow=()) as s,
    ):
        seeded = await seed(store)
        await store.put_oauth2_credential(
            NewCredential(seeded.credential_id, seeded.project_id, "partner", {}),
            OAuth2Settings(Grant.AUTHORIZATION_CODE, provider.token_url, CLIENT_ID, "", ()),
            OAuth2Secrets(CLIENT_SECRET, "at-old", provider.refresh_token()),
            status=OAuth2Status.CONNECTED,
            expires_at=datetime.now(UTC) - timedelta(minutes=1),
        )
        with pytest.raises(CredentialError) as refused:
            await s.served.coordinator.oauth2.refresh(seeded.credential_id)
        assert refused.value.code == "destination_refused"
        assert "127.0.0.1 is a loopback address" in refused.value.message
        assert provider.count("refresh_token") == 0
        page = await store.list_audit(AuditFilter(target=seeded.credential_id), limit=10)
        [record] = [r for r in page.items if r.action == "credential.oauth2_refresh_failed"]
        assert "destination_refused" in str(record.detail)


async def test_the_webhook_sender_says_refused_not_failed() -> None:
    sender = WebhookSender(5.0, outbound())
    with pytest.raises(AlertError) as refused:
        message = Message("s", "t", {"type": "x"})
        await sender.send(claimed("http://169.254.169.254/latest/"), message, 0.0)
    assert refused.value.code == "destination_refused"
    assert refused.value.message.startswith(
        "the webhook http://169.254.169.254/latest/ was not sent: 169.254.169.254 is a "
        "link-local address (where cloud metadata services answer)"
    )


# -- TLS: the certificate is checked for the name, though the address was connected to ----


def certificates(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server's context with a certificate for ``name`` from a CA made here, and a client's
    context that trusts that CA only."""
    now = datetime.now(UTC)

    def made(
        subject: str,
        issuer: x509.Name | None,
        key: ec.EllipticCurvePrivateKey,
        signer: ec.EllipticCurvePrivateKey,
        ca: bool,
    ) -> x509.Certificate:
        named = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(named)
            .issuer_name(issuer or named)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    authority = made("Fulmen test CA", None, ca_key, ca_key, True)
    leaf = made(name, authority.subject, key, ca_key, False)
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(
        cadata=authority.public_bytes(serialization.Encoding.PEM).decode()
    )
    return server, client


async def test_tls_checks_the_certificate_for_the_name_not_the_address(tmp_path: Path) -> None:
    server_tls, client_tls = certificates(tmp_path, "hooks.test")
    hosts: list[str] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        hosts.append(next(h for h in head.split("\r\n") if h.lower().startswith("host:")))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    try:
        transport = OutboundTransport(outbound("127.0.0.1"), verify=client_tls)
        async with httpx2.AsyncClient(transport=transport) as http:
            reached = await http.get(f"https://hooks.test:{port}/")
            assert reached.text == "ok"
            # the same server by its address: its certificate does not name 127.0.0.1
            with pytest.raises(httpx2.ConnectError) as refused:
                await http.get(f"https://127.0.0.1:{port}/")
            assert "certificate" in str(refused.value).lower()
    finally:
        server.close()
        await server.wait_closed()
    assert hosts == [f"Host: hooks.test:{port}"]
