"""Every kind of callback message the simulator sends, checked against its reference fixture.

Fixtures live in tests/fixtures/messages/<service>-<kind>.json; each says where its shape comes
from (Verizon's examples, production's observed NIDD traffic, or the simulator's own table).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tskit.simulator import DOCUMENTED, FAULTS, KINDS, OBSERVED, RESPONSE_KEYS, Simulator, build_message, wire

FIXTURES = Path(__file__).parent / "fixtures" / "messages"
ALL_KINDS = [(service, kind) for service, kinds in KINDS.items() for kind in kinds]


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys, nesting, list lengths and value types, not the values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def kinds_of(ids: list[dict[str, str]]) -> list[str]:
    return [d["kind"].upper() for d in ids]


@pytest.mark.parametrize(("service", "kind"), ALL_KINDS, ids=[f"{s}-{k}" for s, k in ALL_KINDS])
def test_each_message_kind_matches_its_fixture(service: str, kind: str) -> None:
    fixture = json.loads((FIXTURES / f"{service}-{kind}.json").read_text())
    expected = fixture["message"]
    sent = build_message(service, kind, account_name="0000123456-00001", username="u", password="p")
    assert fixture["source"]
    assert shape(sent) == shape(expected)
    assert list(sent) == list(expected)  # the same fields in the same order
    assert kinds_of(sent["deviceIds"]) == kinds_of(expected["deviceIds"])
    assert sent.get("status") == expected.get("status")
    if "faultResponse" in expected:
        assert sent["faultResponse"]["faultcode"].startswith("UnifiedWebService.")


def test_every_fixture_is_a_kind_the_simulator_sends() -> None:
    assert {p.stem for p in FIXTURES.glob("*.json")} == {f"{s}-{k}" for s, k in ALL_KINDS}


def test_production_nidd_facts() -> None:
    """What production sent (thingspace-api.md 4.3), stated outright rather than only as shapes."""
    mo = build_message("NiddService", "mo-data", account_name="0000123456-00001")
    assert len(mo["deviceIds"]) == 1 and mo["deviceIds"][0]["kind"].upper() == "ICCID"
    assert "status" not in mo and mo["maxCallbackThreshold"] == 2
    inner = mo["niddResponse"]["niddMONotificationResponse"]["deviceIds"]
    assert sorted(kinds_of(inner)) == ["ICCID", "IMEI", "IMSI", "MDN", "MIN", "MSISDN"]
    assert len({d["kind"] for d in inner}) == len({d["kind"].upper() for d in inner})
    assert any(d["kind"] != d["kind"].upper() for d in inner)  # mixed case: compare case-insensitively
    queued = build_message("NiddService", "mt-queued", account_name="0000123456-00001")
    report = queued["niddResponse"]["niddMTDeliveryResponse"]
    assert queued["status"] == "Queued" and report["reason"] == "Buffered, device not reachable"
    assert "acknowledgeTime" not in report and "firstAttemptDeliveryTime" not in report
    assert sorted(kinds_of(report["deviceIds"])) == ["ICCID", "IMEI", "MDN", "MSISDN"]
    delivered = build_message("NiddService", "mt-delivery", account_name="x")["niddResponse"]["niddMTDeliveryResponse"]
    assert "reason" not in delivered and delivered["acknowledgeTime"].endswith("Z")
    assert len(delivered["acknowledgeTime"]) == len("2025-12-03T17:20:41.512Z")
    failed = build_message("NiddService", "mt-failed", account_name="x")
    assert failed["status"] == "DeliveryFailed" and failed["niddResponse"]["niddMTDeliveryResponse"]["reason"]


def test_every_message_has_one_top_level_device() -> None:
    for service, kind in ALL_KINDS:
        assert len(build_message(service, kind, account_name="x")["deviceIds"]) == 1, (service, kind)


def test_response_keys_are_written_out_not_derived() -> None:
    assert set(RESPONSE_KEYS) == set(KINDS)
    keys = [key for key, _ in RESPONSE_KEYS.values()]
    assert len(set(keys)) == len(keys)  # one service per key, so a listener can tell them apart
    assert "sMSDeliveryConfirmationResponse" not in keys and "qoSResponse" not in keys
    documented = {s for s, (_, source) in RESPONSE_KEYS.items() if source == "documented"}
    assert documented == {"CarrierService", "NiddService"}


def test_faults_differ_per_service() -> None:
    codes = {build_message(s, "fault", account_name="x")["faultResponse"]["faultcode"] for s in FAULTS}
    assert len(codes) >= 4
    assert build_message("CarrierService", "fault", account_name="x")["faultResponse"]["faultcode"].endswith(
        "DeviceAlreadyActive"
    )


def test_wire_escapes_like_production() -> None:
    mo = build_message("NiddService", "mo-data", account_name="x")
    text = wire(mo)
    assert b"\\u003d" in text and b"=" not in text  # the base64 padding, as production escaped it
    assert json.loads(text) == mo


def test_max_callback_threshold_follows_the_delivery_policy(sim: Simulator) -> None:
    sim.register("0000123456-00003", "CarrierService", "https://l.example.com/c")
    observed = sim.trigger("0000123456-00003", "CarrierService", policy="observed").wait()
    documented = sim.trigger("0000123456-00003", "CarrierService", policy="documented").wait()
    assert observed.message["maxCallbackThreshold"] == len(OBSERVED.delays) + 1 == 2
    assert documented.message["maxCallbackThreshold"] == len(DOCUMENTED.delays) + 1 == 4
    sim.close()


def test_unknown_kind_and_service_are_refused() -> None:
    with pytest.raises(ValueError, match="CarrierService sends activation, suspension"):
        build_message("CarrierService", "sms", account_name="x")
    with pytest.raises(ValueError, match="Nope is not a callback service"):
        build_message("Nope", account_name="x")


def test_the_listener_page_names_exactly_the_services_with_their_own_fault() -> None:
    from tskit.simulator._messages import _GENERIC_FAULT

    readme = " ".join((Path(__file__).parents[1] / "docs" / "listener.md").read_text().split())
    sentence = readme[readme.index("a `fault` for every service") :].split("(`tskit.simulator.FAULTS`)")[0]
    assert sorted(name for name in sentence.replace(",", " ").split() if name in KINDS) == sorted(FAULTS)
    assert _GENERIC_FAULT[0].removeprefix("UnifiedWebService.") in readme
