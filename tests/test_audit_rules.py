"""Each audit rule on its own: what it flags and what it leaves alone."""

from __future__ import annotations

import pytest

import tskit
from tskit.audit import (
    DEFAULT_RULES,
    AuditContext,
    Finding,
    MissingService,
    Rule,
    Severity,
    SharedUrl,
    callback_rule,
    credentials_over_http,
    no_credentials,
    not_https,
    port_not_allowed,
    unknown_service,
    unreachable_host,
)

ACCOUNT = "0000123456-00001"


def cb(url: str, service: str = "CarrierService", username: str = "", password: str = "") -> tskit.Callback:
    return tskit.Callback(ACCOUNT, service, url, username, tskit.Secret(password))


def check(rule: Rule, *callbacks: tskit.Callback, expect: tuple[str, ...] = ()) -> list[Finding]:
    return list(rule.check(ACCOUNT, callbacks, AuditContext(expect=expect)))


def test_not_https() -> None:
    [finding] = check(not_https, cb("http://listener.example.com:9001/cb"))
    assert (finding.rule, finding.severity, finding.service_name) == ("not-https", Severity.MEDIUM, "CarrierService")
    assert check(not_https, cb("https://listener.example.com/cb")) == []


def test_credentials_over_http() -> None:
    assert (
        check(credentials_over_http, cb("http://l.example.com/cb", username="u", password="p"))[0].severity
        is Severity.HIGH
    )
    assert check(credentials_over_http, cb("http://l.example.com/cb", password="p"))
    assert check(credentials_over_http, cb("http://l.example.com/cb")) == []
    assert check(credentials_over_http, cb("https://l.example.com/cb", username="u", password="p")) == []


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("127.0.0.1", "loopback"),
        ("[::1]", "loopback"),
        ("localhost", "local or reserved"),
        ("10.120.102.147", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.10", "private"),
        ("169.254.10.1", "link-local"),
        ("[fe80::1]", "link-local"),
        ("203.0.113.10", "documentation"),
        ("100.64.1.1", "not a public"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("[::ffff:10.0.0.1]", "private"),
        ("listener.internal", "local or reserved"),
        ("box", "single-label"),
        ("example.com", "reserved for documentation"),
        ("listener.example.com", "reserved for documentation"),
        ("Hooks.Example.NET", "reserved for documentation"),
        ("a.b.example.org.", "reserved for documentation"),
    ],
)
def test_unreachable_hosts(host: str, words: str) -> None:
    [finding] = check(unreachable_host, cb(f"https://{host}/cb"))
    assert words in finding.detail
    assert finding.severity == Severity.HIGH


@pytest.mark.parametrize(
    "host", ["listener.example.co", "notexample.com", "8.8.8.8", "[2606:4700::1111]", "api.company.io"]
)
def test_public_hosts_are_not_flagged(host: str) -> None:
    assert check(unreachable_host, cb(f"https://{host}/cb")) == []


@pytest.mark.parametrize(
    ("url", "flagged"),
    [
        ("https://l.example.com/cb", False),
        ("http://l.example.com/cb", False),
        ("https://l.example.com:9003/", False),
        ("https://l.example.com:28220/", False),
        ("https://l.example.com:50559/", False),
        ("https://l.example.com:8443/", True),
        ("http://l.example.com:8080/", True),
        ("https://l.example.com:28221/", True),
        ("https://l.example.com:notaport/", True),
    ],
)
def test_port_not_allowed(url: str, flagged: bool) -> None:
    assert bool(check(port_not_allowed, cb(url))) is flagged


def test_no_credentials() -> None:
    assert check(no_credentials, cb("https://l.example.com/cb"))[0].rule == "no-credentials"
    assert check(no_credentials, cb("https://l.example.com/cb", username="u")) == []
    assert check(no_credentials, cb("https://l.example.com/cb", password="p")) == []


def test_unknown_service() -> None:
    assert check(unknown_service, cb("https://l.example.com/cb", service="FancyNewService"))[0].severity is Severity.LOW
    assert check(unknown_service, cb("https://l.example.com/cb", service="NiddService")) == []


def test_shared_url_names_the_other_services() -> None:
    findings = check(
        SharedUrl(),
        cb("https://l.example.com/cb", "CarrierService"),
        cb("https://l.example.com/cb", "DeviceUsage"),
        cb("https://l.example.com/other", "NiddService"),
    )
    assert sorted((f.service_name, f.detail.split(";")[0]) for f in findings) == [
        ("CarrierService", "the URL is also registered for DeviceUsage"),
        ("DeviceUsage", "the URL is also registered for CarrierService"),
    ]
    assert check(SharedUrl(), cb("https://l.example.com/a", "CarrierService"), cb("https://l.example.com/b")) == []


def test_missing_service() -> None:
    findings = check(
        MissingService(), cb("https://l.example.com/cb", "CarrierService"), expect=("CarrierService", "DeviceUsage")
    )
    assert [(f.service_name, f.rule, f.severity) for f in findings] == [
        ("DeviceUsage", "missing-service", Severity.HIGH)
    ]
    assert check(MissingService(), cb("https://l.example.com/cb")) == []


def test_a_user_rule_is_a_small_function() -> None:
    @callback_rule("no-path", "low", "The listener URL has no path.")
    def no_path(callback: tskit.Callback) -> str | None:
        return "no path" if callback.url.rstrip("/").count("/") < 3 else None

    assert isinstance(no_path, Rule)
    assert check(no_path, cb("https://l.example.com"))[0] == Finding(
        ACCOUNT, "CarrierService", "no-path", Severity.LOW, "no path"
    )
    assert check(no_path, cb("https://l.example.com/cb")) == []


def test_default_rules_are_named_described_and_unique() -> None:
    names = [r.name for r in DEFAULT_RULES]
    assert len(names) == len(set(names)) == 9
    assert all(r.description.endswith(".") for r in DEFAULT_RULES)


def test_severity_parsing() -> None:
    assert Severity.parse("HIGH") is Severity.HIGH and Severity.parse(Severity.LOW) is Severity.LOW
    assert Severity.HIGH > Severity.MEDIUM > Severity.LOW > Severity.INFO
    with pytest.raises(ValueError, match="info, low, medium, high"):
        Severity.parse("critical")
