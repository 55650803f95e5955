"""Bad input is refused before any request, with the field named and what is allowed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import tskit
from tests.timing import growth
from tskit import Reason, Remedy
from tskit import _validate as check
from tskit.simulator import Simulator

ACCOUNT = "0000123456-00003"


@pytest.mark.parametrize("name", ["0000123456-00001", "TestAccount-2", "122333444-00002", "  0000123456-00001 "])
def test_good_account_names(name: str) -> None:
    assert check.account_name(name) == name.strip()


@pytest.mark.parametrize(
    "name",
    ["", "   ", "../0000123456-00001", "0000123456-00001/name/x", "a%2Fb", "a?b=c", "a#b", "-leading", "é", "x" * 65],
)
def test_bad_account_names(name: str) -> None:
    with pytest.raises(tskit.ValidationError) as caught:
        check.account_name(name)
    assert (caught.value.field, caught.value.reason) == ("account_name", Reason.INVALID_VALUE)
    assert "0000123456-00001" in caught.value.allowed  # says what an account name looks like
    assert isinstance(caught.value, ValueError)


def test_account_name_must_be_text() -> None:
    with pytest.raises(tskit.ValidationError) as caught:
        check.account_name(123456)
    assert (caught.value.field, caught.value.reason) == ("account_name", Reason.INVALID_VALUE)
    assert caught.value.problem == "must be a string, not int"


@pytest.mark.parametrize(
    ("given", "suggestion"),
    [
        ("carrierservice", "CarrierService"),
        ("CarierService", "CarrierService"),
        ("DeviceUsag", "DeviceUsage"),
        ("Nidd", None),
        ("QOS", "QoS"),
    ],
)
def test_unknown_service_suggests_the_closest(given: str, suggestion: str | None) -> None:
    with pytest.raises(tskit.ValidationError) as caught:
        check.service_name(given)
    assert (caught.value.field, caught.value.reason) == ("service_name", Reason.UNKNOWN_SERVICE)
    assert caught.value.remedy == Remedy("choose-from", option="allow_unknown_service", value="services")
    assert caught.value.value_shown == given
    if suggestion:
        assert f"did you mean {suggestion!r}?" in str(caught.value)
    else:
        assert "did you mean" not in str(caught.value)


def test_unknown_service_is_accepted_when_asked() -> None:
    assert check.service_name("FutureService", allow_unknown=True) == "FutureService"


@pytest.mark.parametrize("name", ["Future/../Service", "Future Service", "../x", "x%2F", ""])
def test_malformed_service_is_refused_even_when_unknown_allowed(name: str) -> None:
    with pytest.raises(tskit.ValidationError):
        check.service_name(name, allow_unknown=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://listener.example.com/cb",
        "http://203.0.113.5:9001/x",
        "https://l.example.com:28210/a?b=c",
        "http://[2001:db8::1]:50551/cb",
    ],
)
def test_good_urls(url: str) -> None:
    assert check.listener_url(url) == url


def test_scheme_and_host_are_sent_in_lower_case() -> None:
    assert check.listener_url("HTTPS://L.EXAMPLE.COM/CB") == "https://l.example.com/CB"


@pytest.mark.parametrize(
    ("url", "reason", "words"),
    [
        ("ftp://l.example.com/cb", Reason.INVALID_VALUE, "scheme 'ftp'"),
        ("listener.example.com/cb", Reason.INVALID_VALUE, "scheme"),
        ("https://user:pw@l.example.com/cb", Reason.CREDENTIALS_IN_URL, "user name or password"),
        ("https:///cb", Reason.INVALID_VALUE, "no host"),
        ("https://l.example.com:8443/cb", Reason.PORT_NOT_ALLOWED, "port 8443"),
        ("http://l.example.com:8080/cb", Reason.PORT_NOT_ALLOWED, "port 8080"),
        ("https://l.example.com/cb#frag", Reason.INVALID_VALUE, "fragment"),
        ("https://l.example.com/c b", Reason.INVALID_VALUE, "spaces"),
        ("https://l.example.com:99999/cb", Reason.INVALID_VALUE, "cannot be parsed"),
        ("", Reason.INVALID_VALUE, "is empty"),
        ("https://l.example.com/" + "x" * 2100, Reason.INVALID_VALUE, "characters long"),
    ],
)
def test_bad_urls(url: str, reason: Reason, words: str) -> None:
    with pytest.raises(tskit.ValidationError) as caught:
        check.listener_url(url)
    assert (caught.value.field, caught.value.reason) == ("url", reason)
    assert words in caught.value.problem  # which check refused it


def test_a_port_refusal_says_which_ports_and_how_to_skip_the_check() -> None:
    with pytest.raises(tskit.ValidationError) as caught:
        check.listener_url("http://l.example.com:8080/cb")
    assert "28200-28220" in caught.value.allowed
    assert caught.value.remedy == Remedy("set-option", option="allow_any_port", value="True")
    assert caught.value.value_shown == "http://l.example.com:8080/cb"


def test_port_check_can_be_skipped() -> None:
    assert check.listener_url("http://127.0.0.1:8080/cb", allow_any_port=True) == "http://127.0.0.1:8080/cb"


def test_userinfo_error_does_not_echo_the_password() -> None:
    with pytest.raises(tskit.ValidationError) as caught:
        check.listener_url("https://user:hunter22@l.example.com/cb")
    assert "hunter22" not in str(caught.value)


def test_credentials_at_most_40_characters_and_never_echoed() -> None:
    assert check.credential("password", "p" * 40) == "p" * 40
    assert check.credential("username", None) == ""
    with pytest.raises(tskit.ValidationError) as caught:
        check.credential("password", "secret-" + "p" * 40)
    assert (caught.value.field, caught.value.allowed) == ("password", "at most 40")
    assert "secret-" not in str(caught.value)


def test_path_segments_are_percent_encoded() -> None:
    assert check.path_segment("Carrier Service/x") == "Carrier%20Service%2Fx"
    for dots in (".", ".."):
        with pytest.raises(tskit.ValidationError):
            check.path_segment(dots)


BAD_CALLS = [
    ("register", ("../0000123456-00001", "CarrierService", "https://l.example.com/c"), {}),
    ("register", (ACCOUNT, "CarrierService", "https://l.example.com:8443/c"), {}),
    ("register", (ACCOUNT, "Carrier", "https://l.example.com/c"), {}),
    ("register", (ACCOUNT, "CarrierService", "https://l.example.com/c"), {"password": "p" * 41}),
    ("register", (ACCOUNT, "CarrierService", "https://l.example.com/c"), {"username": "u" * 41}),
    ("deregister", (ACCOUNT, "../../oauth2/token"), {"allow_unknown_service": True}),
    ("deregister", ("0000123456-00001/name/CarrierService", "CarrierService"), {}),
    ("list", ("0000123456-00001/../0000123456-00002",), {}),
    ("list", ("0000123456-00001?x=1",), {}),
]


@pytest.mark.parametrize(("call", "args", "kwargs"), BAD_CALLS)
def test_bad_input_sends_zero_requests(
    sim: Simulator, call: str, args: tuple[str, ...], kwargs: dict[str, object]
) -> None:
    before = {a: sim.registrations(a) for a in sim.accounts}
    ts = tskit.connect(simulator=sim)
    method = getattr(ts, f"{call}_callback" if call != "list" else "list_callbacks")
    with pytest.raises(tskit.ValidationError):
        method(*args, **kwargs)
    assert list(sim.requests) == []
    assert {a: sim.registrations(a) for a in sim.accounts} == before


def test_no_accepted_input_reaches_another_path(sim: Simulator) -> None:
    """Whatever passes validation lands on exactly the documented path."""
    ts = tskit.connect(simulator=sim)
    sim.add_account("A.b_c-1", users=["demo-user"])
    ts.list_callbacks("A.b_c-1")
    with pytest.raises(tskit.ApiError):  # the simulator does not know the service; the path is still right
        ts.deregister_callback("A.b_c-1", "Odd.Name-1_x", allow_unknown_service=True)
    assert [r.path for r in sim.requests if r.operation in ("list", "deregister")] == [
        "/api/m2m/v1/callbacks/A.b_c-1",
        "/api/m2m/v1/callbacks/A.b_c-1/name/Odd.Name-1_x",
    ]


@pytest.mark.parametrize(
    "make",
    [lambda n: "a:" * (n // 2), lambda n: "a:" * (n // 2) + " @", lambda n: "https://u:" + "p" * n + "@h",
     lambda n: "//" * (n // 2) + "@"],
)  # fmt: skip
def test_masking_user_info_takes_linear_time_on_hostile_urls(make: Callable[[int], str]) -> None:
    # One listed URL of 80,000 characters once took 37 s of the event loop (quadratic scanning).
    from tskit._errors import mask_userinfo, userinfo_passwords

    def work(text: str) -> None:
        mask_userinfo(text)
        userinfo_passwords(text)

    assert growth(work, make, 5_000) < 24  # linear: ~8-10; quadratic: ~64


@pytest.mark.parametrize(
    "make",
    [lambda n: "h?" + "a" * n + "=", lambda n: "h?" + "a=" * (n // 2), lambda n: "h?" + "&token" * (n // 6) + "=x",
     lambda n: "?&;" * (n // 3)],
)  # fmt: skip
def test_masking_query_credentials_takes_linear_time_on_hostile_urls(make: Callable[[int], str]) -> None:
    from tskit._errors import mask_url, query_credentials, url_secrets

    def work(text: str) -> None:
        mask_url(text)
        url_secrets(text)
        query_credentials(text)

    assert growth(work, make, 5_000) < 24  # linear: ~8-10; quadratic: ~64
