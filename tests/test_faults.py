"""Truthful under faults: a register or deregister returns only when ThingSpace holds what was asked.

Real HTTP on loopback: a served simulator (with its own fault knobs) behind a small proxy that drops
answers after forwarding, answers 500 without forwarding, and corrupts or replaces bodies.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

import tskit
from tests.conftest import FakeClock, make_client
from tests.fault_proxy import FaultProxy
from tskit import _validate as check
from tskit.simulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_USERNAME,
    Fault,
    Simulator,
    SimulatorServer,
)

pytestmark = pytest.mark.anyio
ACCOUNT = "0000123456-00001"  # CarrierService and DeviceUsage registered
EMPTY = "0000123456-00003"
URL = "https://listener.example.com/carrier"
OLD, NEW = "old-password-0001", "new-password-0002"


@pytest.fixture
def proxy(server: SimulatorServer) -> Iterator[FaultProxy]:
    with FaultProxy(server.base_url, stall_seconds=1.5) as running:
        yield running


@pytest.fixture
async def client(sim: Simulator, clock: FakeClock, proxy: FaultProxy) -> AsyncIterator[tskit.ThingSpaceClient]:
    async with make_client(sim, clock, base_url=proxy.base_url, timeout=1.0) as c:
        await c.list_callbacks(EMPTY)  # log in first, so that faults hit the calls
        yield c


def held(sim: Simulator, account: str, service: str = "CarrierService") -> dict[str, str] | None:
    return next((r for r in sim.registrations(account) if r["serviceName"] == service), None)


def sent(sim: Simulator, operation: str) -> int:
    return sim.count(operation)


# -- 1. outcome by comparison ------------------------------------------------------------


async def test_rotation_answered_500_without_effect_is_resent_not_confirmed(
    client: tskit.ThingSpaceClient, sim: Simulator
) -> None:
    sim.register(EMPTY, "CarrierService", URL, "user", OLD)
    sim.faults.scripted.append(Fault(status=500, operations=("register",)))
    result = await client.register_callback(EMPTY, "CarrierService", URL, username="user", password=NEW)
    assert held(sim, EMPTY) == {"serviceName": "CarrierService", "url": URL, "username": "user", "password": NEW}
    assert (result.outcome, result.confirmed_by_listing) == ("resent", False)


async def test_rotation_answered_500_by_the_proxy_is_resent(
    client: tskit.ThingSpaceClient, sim: Simulator, proxy: FaultProxy
) -> None:
    sim.register(EMPTY, "CarrierService", URL, "user", OLD)
    proxy.script("500", "POST")
    result = await client.register_callback(EMPTY, "CarrierService", URL, username="user", password=NEW)
    assert held(sim, EMPTY)["password"] == NEW  # type: ignore[index]
    assert result.outcome == "resent"
    assert sent(sim, "register") == 1  # the proxy's 500 never reached the simulator


async def test_rotation_whose_answer_is_lost_is_confirmed_by_listing(
    client: tskit.ThingSpaceClient, sim: Simulator, proxy: FaultProxy
) -> None:
    sim.register(EMPTY, "CarrierService", URL, "user", OLD)
    proxy.script("drop-after", "POST")
    result = await client.register_callback(EMPTY, "CarrierService", URL, username="user", password=NEW)
    assert (result.outcome, result.confirmed_by_listing) == ("confirmed", True)
    assert sent(sim, "register") == 1 and held(sim, EMPTY)["password"] == NEW  # type: ignore[index]


async def test_register_timed_out_is_decided_by_listing(
    client: tskit.ThingSpaceClient, sim: Simulator, proxy: FaultProxy
) -> None:
    proxy.script("stall", "POST")
    result = await client.register_callback(EMPTY, "CarrierService", URL, password=NEW)
    assert result.outcome == "confirmed" and sent(sim, "register") == 1


async def test_register_dropped_before_it_reached_thingspace_is_resent(
    client: tskit.ThingSpaceClient, sim: Simulator, proxy: FaultProxy
) -> None:
    proxy.script("drop-before", "POST")
    result = await client.register_callback(EMPTY, "CarrierService", URL, password=NEW)
    assert result.outcome == "resent" and sent(sim, "register") == 1 and held(sim, EMPTY)["password"] == NEW  # type: ignore[index]


async def test_a_clear_answer_is_sent_once(client: tskit.ThingSpaceClient, sim: Simulator) -> None:
    result = await client.register_callback(EMPTY, "CarrierService", URL, password=NEW)
    assert (result.outcome, result.confirmed_by_listing) == ("sent", False)
    assert sent(sim, "register") == 1


async def test_register_raises_when_the_listing_never_shows_it(sim: Simulator, clock: FakeClock) -> None:
    with sim.serve() as running, FaultProxy(running.base_url) as proxy:
        retry = tskit.RetryPolicy(attempts=2, backoff=0.01)
        async with make_client(sim, clock, base_url=proxy.base_url, retry=retry) as client:
            sim.register(EMPTY, "CarrierService", URL, "user", OLD)
            proxy.script("500", "POST")
            proxy.script("500", "POST")
            with pytest.raises(tskit.ApiError) as caught:
                await client.register_callback(EMPTY, "CarrierService", URL, username="user", password=NEW)
    assert caught.value.status_code == 500
    assert any("the listing does not show it now" in note for note in caught.value.__notes__)
    assert held(sim, EMPTY)["password"] == OLD  # type: ignore[index]


async def test_deregister_whose_answer_is_lost_is_confirmed(
    client: tskit.ThingSpaceClient, sim: Simulator, proxy: FaultProxy
) -> None:
    proxy.script("drop-after", "DELETE")
    result = await client.deregister_callback(ACCOUNT, "CarrierService")
    # (an HTTP stack may resend a DELETE on its own; its "not registered" answer must not make this fail)
    assert result.outcome == "confirmed" and held(sim, ACCOUNT) is None


async def test_deregister_answered_500_without_effect_is_resent(
    client: tskit.ThingSpaceClient, sim: Simulator, proxy: FaultProxy
) -> None:
    proxy.script("500", "DELETE")
    result = await client.deregister_callback(ACCOUNT, "CarrierService")
    assert result.outcome == "resent" and held(sim, ACCOUNT) is None


async def test_deregister_already_applied_and_answered_not_registered_succeeds(
    client: tskit.ThingSpaceClient, sim: Simulator
) -> None:
    # What a resend below tskit meets when the first attempt took effect and its answer was lost.
    result = await client.deregister_callback(EMPTY, "CarrierService")
    assert result.outcome == "confirmed" and result.confirmed_by_listing


@pytest.mark.parametrize("listing", [b"", b"[]"])
async def test_deregister_is_not_confirmed_by_one_empty_listing_alone(
    client: tskit.ThingSpaceClient, sim: Simulator, proxy: FaultProxy, listing: bytes
) -> None:
    # The DELETE never reached ThingSpace, and a faulty answer to the deciding listing says "none".
    proxy.script("500", "DELETE")
    proxy.script("replace", "GET", listing)
    result = await client.deregister_callback(ACCOUNT, "CarrierService")
    assert held(sim, ACCOUNT) is None
    assert result.outcome == "resent" and sent(sim, "deregister") == 1


async def test_register_is_not_confirmed_by_a_listing_without_the_password(
    client: tskit.ThingSpaceClient, sim: Simulator, proxy: FaultProxy
) -> None:
    sim.register(EMPTY, "CarrierService", URL, "user", OLD)
    proxy.script("500", "POST")  # never reached ThingSpace
    item = {"serviceName": "CarrierService", "url": URL, "username": "user"}  # no password field: unknown
    proxy.script("replace", "GET", json.dumps([item]).encode())
    result = await client.register_callback(EMPTY, "CarrierService", URL, username="user")
    assert held(sim, EMPTY)["password"] == ""  # type: ignore[index]
    assert result.outcome == "resent"


async def test_a_register_overwritten_by_another_caller_says_the_listing_does_not_show_it(
    sim: Simulator, clock: FakeClock, server: SimulatorServer
) -> None:
    with FaultProxy(server.base_url) as proxy:
        async with make_client(
            sim, clock, base_url=proxy.base_url, retry=tskit.RetryPolicy(attempts=1, backoff=0.01)
        ) as client:
            await client.list_callbacks(EMPTY)
            # Applied, then another caller registers the service before the listing; the answer is lost.
            proxy.script("drop-after", "POST", then=lambda: sim.register(EMPTY, "CarrierService", URL, "o", "o-pw"))
            with pytest.raises(tskit.TransportError) as caught:
                await client.register_callback(EMPTY, "CarrierService", URL, username="user", password=NEW)
    notes = " ".join(caught.value.__notes__)
    assert "the listing does not show it now" in notes
    assert held(sim, EMPTY)["username"] == "o"  # type: ignore[index]


# -- 2. tolerant of what the API may answer ------------------------------------------------


@pytest.mark.parametrize(
    "body", [b"", b"{}", b'{"accountName": "0000123456-00003"}', b"null", b'{"accountName": 1, "serviceName": []}']
)
async def test_register_with_an_empty_or_partial_2xx_is_verified_by_listing(
    client: tskit.ThingSpaceClient, sim: Simulator, proxy: FaultProxy, body: bytes
) -> None:
    proxy.script("replace", "POST", body)
    result = await client.register_callback(EMPTY, "CarrierService", URL, password=NEW)
    assert result.outcome == "confirmed" and sent(sim, "register") == 1


async def test_register_with_a_corrupt_2xx_is_verified_by_listing(
    client: tskit.ThingSpaceClient, sim: Simulator, proxy: FaultProxy
) -> None:
    proxy.script("corrupt", "POST")
    result = await client.register_callback(EMPTY, "CarrierService", URL, password=NEW)
    assert result.outcome == "confirmed" and held(sim, EMPTY)["password"] == NEW  # type: ignore[index]


async def test_deregister_with_an_empty_2xx_is_verified_by_listing(
    client: tskit.ThingSpaceClient, sim: Simulator, proxy: FaultProxy
) -> None:
    proxy.script("empty", "DELETE")
    result = await client.deregister_callback(ACCOUNT, "CarrierService")
    assert result.outcome == "confirmed" and held(sim, ACCOUNT) is None


async def test_list_items_may_name_the_service_name(client: tskit.ThingSpaceClient, proxy: FaultProxy) -> None:
    items = [{"name": "CarrierService", "url": URL, "username": "u", "password": "p1"}]
    proxy.script("replace", "GET", json.dumps(items).encode())
    [callback] = await client.list_callbacks(EMPTY)
    assert (callback.account_name, callback.service_name, callback.url) == (EMPTY, "CarrierService", URL)


async def test_a_garbled_list_answer_is_read_again(
    client: tskit.ThingSpaceClient, sim: Simulator, proxy: FaultProxy
) -> None:
    sim.register(EMPTY, "CarrierService", URL, "user", "pw")
    proxy.script("corrupt", "GET", b"cut")
    [callback] = await client.list_callbacks(EMPTY)
    assert callback.password == "pw" and proxy.applied["corrupt"] == 1


async def test_login_credentials_are_refused_as_listener_credentials(
    client: tskit.ThingSpaceClient, sim: Simulator
) -> None:
    before = len(sim.requests)
    for field, user, password in (
        ("username", DEMO_USERNAME, None),
        ("username", DEMO_USERNAME.upper(), "pw"),
        ("password", "listener", DEMO_PASSWORD),
        ("password", None, DEMO_CLIENT_SECRET),
        # the login secrets as the listener username, and lookalikes of the login credentials
        ("username", DEMO_PASSWORD, "pw-1"),
        ("username", DEMO_CLIENT_SECRET, "pw-1"),
        ("username", "demo-\u00aduser", "pw-1"),  # soft hyphen
        ("username", "ｄｅｍｏ－ｕｓｅｒ", "pw-1"),  # fullwidth
        ("username", "demo-user\u200e", "pw-1"),
        ("password", "listener", DEMO_PASSWORD.upper()),
        ("password", "listener", "".join(chr(ord(c) + 0xFEE0) for c in DEMO_PASSWORD)),
        ("password", "listener", DEMO_CLIENT_SECRET.replace("-", "-\u00ad")),
    ):
        with pytest.raises(tskit.ValidationError) as caught:
            await client.register_callback(EMPTY, "CarrierService", URL, username=user, password=password)
        assert caught.value.field == field
        assert DEMO_PASSWORD not in str(caught.value) and DEMO_CLIENT_SECRET not in str(caught.value)
    assert len(sim.requests) == before


# -- 3. secrets scrubbed everywhere --------------------------------------------------------

CANARY = "canary-Pw-7f3a9c"


async def test_a_corrupt_list_answer_shows_no_listener_password(
    client: tskit.ThingSpaceClient, sim: Simulator, proxy: FaultProxy, tmp_path: Path
) -> None:
    sim.register(EMPTY, "CarrierService", URL, "user", CANARY)
    for corruption in (b"cut", b"bytes", b"prefix"):
        for _ in range(client.retry.attempts):  # every try of the call gets a garbled answer
            proxy.script("corrupt", "GET", corruption)
        with pytest.raises(tskit.UnexpectedResponseError) as caught:
            await client.list_callbacks(EMPTY)
        assert CANARY not in _everything(caught.value), corruption


def test_audit_errors_and_snapshots_hold_no_password(sim: Simulator, server: SimulatorServer, tmp_path: Path) -> None:
    sim.register(EMPTY, "CarrierService", URL, "user", CANARY)
    with FaultProxy(server.base_url) as proxy:
        proxy.script("corrupt", "GET", b"prefix")
        proxy.script("corrupt", "GET", b"bytes")
        ts = tskit.connect(
            client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET, username=DEMO_USERNAME,
            password=DEMO_PASSWORD, base_url=proxy.base_url, retry=tskit.RetryPolicy(attempts=1),
        )  # fmt: skip
        try:
            audit = ts.audit([EMPTY, ACCOUNT])
        finally:
            ts.close()
    assert [e.error for e in audit.error_list] == ["UnexpectedResponseError"] * 2
    text = repr(audit) + audit._repr_html_() + audit.errors.to_string() + audit.errors.to_html()
    for name in ("snapshot.json", "snapshot.csv"):
        audit.save(tmp_path / name)
        text += (tmp_path / name).read_text()
    assert CANARY not in text


async def test_error_texts_are_scrubbed_of_every_listener_password_read(
    client: tskit.ThingSpaceClient, sim: Simulator, proxy: FaultProxy
) -> None:
    sim.register(EMPTY, "DeviceUsage", URL, "user", CANARY)
    await client.list_callbacks(EMPTY)  # the client has now read the password
    proxy.script("400", "POST", f"listener {URL} with password {CANARY} and {DEMO_PASSWORD}".encode())
    with pytest.raises(tskit.ApiError) as caught:
        await client.register_callback(EMPTY, "CarrierService", URL, password=NEW)
    assert caught.value.status_code == 400
    text = _everything(caught.value)
    assert CANARY not in text and DEMO_PASSWORD not in text


@pytest.mark.parametrize(
    "url",
    [
        f"https://user:{CANARY}@listener.example.com/cb",
        f"https://user:{CANARY}@listener.example.com:bad/cb",
        f"https://user:{CANARY}@listener\uff0eexample.com/cb",
        f"https://user:{CANARY}@listener.example.com\uff0fcb",
        f"https://user:{CANARY}@[::1/cb",
        f"ftp://user:{CANARY}@listener.example.com/cb",
    ],
)
def test_url_user_info_is_never_echoed(url: str) -> None:
    with pytest.raises(tskit.ValidationError) as caught:
        tskit._validate.listener_url(url)
    assert caught.value.field == "url" and CANARY not in _everything(caught.value)


def test_login_credentials_that_are_not_text_are_refused_before_sending() -> None:
    with pytest.raises(tskit.ConfigurationError) as caught:
        tskit.Credentials("app", "secret\udcff", "user", "password")
    assert caught.value.field == "client_secret" and "U+DCFF" in str(caught.value)


def test_excerpts_of_answers_are_short_and_scrubbed() -> None:
    text = tskit._errors.excerpt(b"x" * 500 + CANARY.encode(), [CANARY])
    assert len(text) <= 80 and CANARY not in tskit._errors.excerpt(CANARY.encode() + b"y" * 500, [CANARY])


async def test_a_listed_url_with_a_password_in_it_is_shown_masked(
    client: tskit.ThingSpaceClient, proxy: FaultProxy
) -> None:
    items = [{"serviceName": "CarrierService", "url": f"https://user:{CANARY}@listener.example.com:443/cb?x=1"}]
    proxy.script("replace", "GET", json.dumps(items).encode())
    [callback] = await client.list_callbacks(EMPTY)
    assert callback.url == "https://user:********@listener.example.com:443/cb?x=1"
    assert CANARY in client._known_secrets()  # and scrubbed from any error text from now on
    frame = tskit.callbacks_frame([callback])
    assert CANARY not in frame.to_html() + repr(callback)


def test_scrub_hides_password_fields_it_was_not_told_about() -> None:
    text = tskit._errors.scrub(f'[{{"url": "https://u:{CANARY}@h/x", "password": "{CANARY}"}}, {{"password":"x')
    assert CANARY not in text and '"password": ***' in text


ODD = 'pä"ss\\wörd-Ｓecret-77'  # non-ASCII, a quote, a backslash, a fullwidth letter
ROTATED = "Secret-Rotation-99"


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@pytest.mark.parametrize(
    ("secret", "body"),
    [
        (ODD, json.dumps({"errorCode": "INPUT_INVALID", "errorMessage": {"echo": {"pw": ODD}}}).encode()),
        (ODD, json.dumps({"errorCode": "INPUT_INVALID", "errorMessage": ODD}, ensure_ascii=False).encode()),
        (ODD, json.dumps({"errorCode": "INPUT_INVALID", "errorMessage": "bad " + quote(ODD)}).encode()),
        (ROTATED, json.dumps({"errorCode": "E", "errorMessage": "bad value " + ROTATED.upper()}).encode()),
        (ROTATED, b'{"errorCode":"X","errorMessage":"bad \\u0053ecret-Rotation-99"'),
        (ROTATED, b"<p>bad value Secret&#45;Rotation&#45;99</p>"),
        (ROTATED, json.dumps({"errorCode": "E", "errorMessage": _fullwidth(ROTATED)}).encode()),
        (ROTATED, json.dumps({"errorCode": f"E {ROTATED.lower()}", "errorMessage": "x"}).encode()),
        ("Zq", json.dumps({"errorCode": "E", "errorMessage": "cached row Zq for CarrierService"}).encode()),
        ("Maß-secret-1", json.dumps({"errorCode": "E", "errorMessage": "bad MASS-SECRET-1"}).encode()),
    ],
)
def test_secrets_are_scrubbed_in_every_form_a_server_may_echo(secret: str, body: bytes) -> None:
    error = tskit._errors.error_from_response(400, body, method="POST", path="/p", secrets=[secret])
    text = _everything(error)
    assert secret not in text and secret.upper() not in text and _fullwidth(secret) not in text
    assert secret.casefold() not in text.casefold()
    for form in tskit._errors.secret_forms(secret):
        assert form not in text, form
    assert "row *** for" in text or "***" in text


async def test_the_log_of_an_uncertain_outcome_quotes_no_password(
    client: tskit.ThingSpaceClient, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.script("replace", "POST", b"<html>saved " + quote(ODD).encode() + b"</html>")
    with caplog.at_level(logging.DEBUG):
        result = await client.register_callback(EMPTY, "CarrierService", URL, username="u", password=ODD)
    assert result.outcome == "confirmed" and "outcome uncertain" in caplog.text
    assert not any(form in caplog.text for form in tskit._errors.secret_forms(ODD))


@pytest.mark.parametrize(
    "url",
    [
        f"https:\\\\user:{CANARY}@listener.example.com/cb",
        f"//user:{CANARY}@listener.example.com/cb",
        f"https:user:{CANARY}@listener.example.com/cb",
        f"https://listener.example.com/cb?next=https://user:{CANARY}@other.example.com/",
    ],
)
def test_user_info_of_every_url_form_is_masked_on_every_surface(sim: Simulator, tmp_path: Path, url: str) -> None:
    sim.register(EMPTY, "CarrierService", url, "u", "pw-1")
    ts = tskit.connect(simulator=sim)
    try:
        frame = ts.list_callbacks(EMPTY)
        audit = ts.audit([EMPTY], progress=False)
    finally:
        ts.close()
    text = repr(frame) + frame.to_html() + repr(audit) + audit.callbacks.to_html()
    text += tskit._errors.scrub(f"bad url {url}")
    audit.save(tmp_path / "snapshot.json")
    text += (tmp_path / "snapshot.json").read_text()
    assert CANARY not in text and "********@" in frame.to_html()


def _everything(error: BaseException) -> str:
    """An error's message, repr, notes and whole chain."""
    parts: list[str] = []
    seen: BaseException | None = error
    while seen is not None:
        parts += [str(seen), repr(seen), *getattr(seen, "__notes__", ()), repr(vars(seen))]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


# -- 4. strict text ------------------------------------------------------------------------

FORBIDDEN = [
    *(chr(c) for c in (0x00, 0x01, 0x09, 0x0A, 0x0D, 0x1B, 0x1F, 0x7F, 0x80, 0x85, 0x9B, 0x9F)),
    *(chr(c) for c in range(0x202A, 0x202F)),
    *(chr(c) for c in range(0x2066, 0x206A)),
    "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u2028", "\u2029", "\ud800", "\udcff", "\udfff",
    # every other format character, space but U+0020, noncharacter, selector, tag, blank or private one
    "\u00ad", "\u034f", "\u061c", "\u180e", "\u200e", "\u200f", "\u2061", "\u206a", "\U000e0001", "\U000e0041",
    "\u00a0", "\u2000", "\u200a", "\u202f", "\u205f", "\u3000", "\u1680",
    "\ufdd0", "\ufdef", "\ufffe", "\uffff", "\U0001fffe", "\U0010ffff",
    "\ufe00", "\ufe0f", "\U000e0100", "\U000e01ef", "\u180b", "\u180f",
    "\ufff9", "\ufffa", "\ufffb", "\ufffc", "\u115f", "\u1160", "\u3164", "\uffa0", "\u2800",
    "\ue000", "\U000f0000", "\u0378", "\U0001d173",
]  # fmt: skip


@pytest.mark.parametrize("char", FORBIDDEN, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("field", ["account_name", "service_name", "url", "username", "password"])
def test_invisible_and_control_characters_are_refused_before_sending(sim: Simulator, field: str, char: str) -> None:
    args = {"account_name": EMPTY, "service_name": "CarrierService", "url": URL, "username": "u", "password": "pw"}
    args[field] = {"url": f"https://listener.example.com/c{char}b", "account_name": f"0000123456{char}-00003"}.get(
        field, f"{args[field]}{char}x"
    )
    ts = tskit.connect(simulator=sim)
    try:
        with pytest.raises(tskit.ValidationError) as caught:
            ts.register_callback(
                args["account_name"],
                args["service_name"],
                args["url"],
                username=args["username"],
                password=args["password"],
            )
    finally:
        ts.close()
    assert caught.value.field == field and f"U+{ord(char):04X}" in str(caught.value)
    assert not sim.requests


@pytest.mark.parametrize("field", ["username", "password"])
@pytest.mark.parametrize("value", ["\u0301ab", " ab", "ab ", "\u0301"])
def test_leading_marks_and_edge_spaces_are_refused(sim: Simulator, field: str, value: str) -> None:
    ts = tskit.connect(simulator=sim)
    try:
        with pytest.raises(tskit.ValidationError) as caught:
            if field == "username":
                ts.register_callback(EMPTY, "CarrierService", URL, username=value)
            else:
                ts.register_callback(EMPTY, "CarrierService", URL, password=value)
    finally:
        ts.close()
    assert caught.value.field == field and value.strip() not in str(caught.value).replace(field, "")
    assert not sim.requests


@pytest.mark.parametrize(
    "host",
    [
        "a" * 64 + ".example.com", ("a" * 60 + ".") * 5 + "com", "-bad-.example.com", "a..b.com", "exa_mple.com",
        "ex%61mple.com", "0x7f.1", "127.1", "1.2.3.4.5", "host.", "xn--zz.example",
        "ex\u0430mple.com",  # Cyrillic a among Latin letters
        "\u0301a.example", "a_b.ex\u00e4mple",
    ],
)  # fmt: skip
def test_malformed_and_lookalike_hosts_are_refused(host: str) -> None:
    with pytest.raises(tskit.ValidationError) as caught:
        check.listener_url(f"https://{host}/cb")
    assert caught.value.field == "url"


@pytest.mark.parametrize(
    ("given", "sent_as"),
    [
        ("HTTPS://Listener.EXAMPLE.com/Cb", "https://listener.example.com/Cb"),
        ("https://Listener.example.com/ä", "https://listener.example.com/%C3%A4"),
        ("https://127.0.0.1:443/x", "https://127.0.0.1:443/x"),
        ("https://[::1]/x", "https://[::1]/x"),
        ("https://XN--BCHER-KVA.example/x", "https://xn--bcher-kva.example/x"),
        ("https://日本語.jp/x", "https://xn--wgv71a119e.jp/x"),
    ],
)
def test_urls_are_sent_as_a_listing_shows_them(given: str, sent_as: str) -> None:
    assert check.listener_url(given) == sent_as


def test_the_result_says_the_url_sent_and_whether_a_listener_was_removed(sim: Simulator) -> None:
    ts = tskit.connect(simulator=sim)
    try:
        registered = ts.register_callback(EMPTY, "CarrierService", "https://BÜCHER.example/cb")
        removed = ts.deregister_callback(EMPTY, "CarrierService")
        again = ts.deregister_callback(EMPTY, "CarrierService")
    finally:
        ts.close()
    assert registered.url == "https://xn--bcher-kva.example/cb"
    assert (removed.was_registered, again.was_registered) == (True, False)


def test_internationalised_hosts_are_sent_in_idna_form(sim: Simulator) -> None:
    ts = tskit.connect(simulator=sim)
    try:
        ts.register_callback(EMPTY, "CarrierService", "https://bücher.example/cb/ä?q=ü")
        for host in ("\u0301a.example", "xn--zz.example", "a_b.ex\u00e4mple"):
            with pytest.raises(tskit.ValidationError) as caught:
                ts.register_callback(EMPTY, "DeviceUsage", f"https://{host}/cb")
            assert (caught.value.field, caught.value.reason) == ("url", tskit.Reason.INVALID_VALUE)
            assert "IDNA" in caught.value.allowed
    finally:
        ts.close()
    assert held(sim, EMPTY)["url"] == "https://xn--bcher-kva.example/cb/%C3%A4?q=%C3%BC"  # type: ignore[index]


def test_cli_refuses_arguments_that_are_not_utf8(sim: Simulator, tmp_path: Path) -> None:
    env = {**os.environ, "TSKIT_CONFIG_DIR": str(tmp_path), "PYTHONIOENCODING": "utf-8"}
    for name in ("CLIENT_ID", "CLIENT_SECRET", "USERNAME", "PASSWORD", "BASE_URL"):
        env.pop(f"THINGSPACE_{name}", None)
    args = [b"register", EMPTY.encode(), b"CarrierService", b"https://listener.example.com/\xff\xfe"]
    done = subprocess.run([sys.executable.encode(), b"-m", b"tskit", *args], env=env, capture_output=True, timeout=60)
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2 and "not valid UTF-8" in err and "Traceback" not in err, err


@pytest.fixture
def cli_with(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    """The tskit command, run in this process against ``sim`` without retries."""
    from tskit.cli import _common

    monkeypatch.setattr(
        _common, "connect", lambda args: tskit.connect(simulator=sim, retry=tskit.RetryPolicy(attempts=1))
    )
    return sim


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def test_cli_prints_the_notes_of_an_error(cli_with: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    from tskit.cli import main

    cli_with.faults.scripted.append(Fault(status=500, operations=("register",)))
    assert main(["register", EMPTY, "CarrierService", URL, "--no-password", "--yes"]) == 1
    assert "the listing does not show it now" in capsys.readouterr().err


def test_cli_reads_accounts_files_strictly(
    cli_with: Simulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tskit.cli import main

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"0000123456-00001\n\xff\xfe00\n")
    assert main(["list", "--accounts-file", str(bad)]) == 2
    assert "not valid UTF-8" in capsys.readouterr().err
    _stdin(monkeypatch, b"0000123456-00001\n\xe9\n")
    assert main(["list", "--accounts-file", "-"]) == 2
    assert "not valid UTF-8" in capsys.readouterr().err
    with_bom = tmp_path / "bom.txt"
    with_bom.write_bytes(b"\xef\xbb\xbf0000123456-00001\r\n")
    assert main(["list", "--accounts-file", str(with_bom), "--format", "csv"]) == 0
    assert "0000123456-00001,CarrierService" in capsys.readouterr().out
    _stdin(monkeypatch, b"\xef\xbb\xbf0000123456-00001\n")
    assert main(["list", "--accounts-file", "-", "--format", "csv"]) == 0


def test_cli_refuses_an_empty_password_and_strips_crlf(
    cli_with: Simulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tskit.cli import main

    monkeypatch.setenv("LISTENER_PW", "")
    assert main(["register", EMPTY, "CarrierService", URL, "--username", "u", "--password-env", "LISTENER_PW"]) == 2
    assert "the variable LISTENER_PW is empty" in capsys.readouterr().err
    _stdin(monkeypatch, b"\r\n")
    assert main(["register", EMPTY, "CarrierService", URL, "--username", "u", "--password-stdin"]) == 2
    assert "empty" in capsys.readouterr().err
    assert held(cli_with, EMPTY) is None  # nothing was sent
    _stdin(monkeypatch, b"pw-\xff\n")
    assert main(["register", EMPTY, "CarrierService", URL, "--username", "u", "--password-stdin"]) == 2
    assert "not valid UTF-8" in capsys.readouterr().err
    _stdin(monkeypatch, b"pw-from-stdin\r\n")
    argv = ["register", EMPTY, "CarrierService", URL, "--username", "u", "--password-stdin", "--yes"]
    assert main(argv) == 0  # --yes: URL is on example.com, which an audit rates unreachable
    assert held(cli_with, EMPTY)["password"] == "pw-from-stdin"  # type: ignore[index]


def test_cli_says_a_service_had_no_listener_and_the_url_registered(
    cli_with: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    from tskit.cli import main

    assert main(["register", EMPTY, "CarrierService", "https://BÜCHER.example/cb", "--no-password", "--yes"]) == 0
    assert "Registered as https://xn--bcher-kva.example/cb" in capsys.readouterr().out
    assert main(["deregister", EMPTY, "DeviceUsage", "--yes"]) == 0
    assert "had no listener" in capsys.readouterr().out


# -- 5. the same checks at a small scale (``python -m benchmarks.faults`` runs them at full scale) --


def test_the_scale_run_meets_every_goal_at_a_small_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import faults

    monkeypatch.setenv("TSKIT_CONFIG_DIR", os.environ["TSKIT_CONFIG_DIR"])  # restored after the run
    run = faults.measure(accounts=30, mutations=30, bad=300, seed=2, listing=30)
    missed = [r for r in run.rows if not r.ok]
    assert not missed, faults.table(missed)
    figures = {(r.part, r.measure.split(" (")[0]): r.figure for r in run.rows}
    assert figures[("fleet audit", "missing")] == 0 and figures[("bad inputs", "crashes")] == 0
    assert figures[("faults met", "by the simulator")] > 0 and figures[("faults met", "by the proxy")] > 0
    assert figures[("rotation, 5% empty listings", "registrations")] == 60
    assert len(run.canaries) > 100 and {"widget state", "listener files", "CLI output"} <= set(run.surfaces)
