"""One identity however its server is spelt, records on disk read with suspicion, secrets of a base URL never shown."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import httpx2
import pytest

import tskit
from tskit.auth import guard
from tskit.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, Simulator
from tskit.state import Plan

LIST = "/api/m2m/v1/callbacks/0000123456-00001"
SECRET = "Sup3rS3cretPW"


def _call(auth: tskit.ThingSpaceAuth, url: str) -> object:
    with httpx2.Client(auth=auth, base_url=url) as client:
        try:
            return client.get(LIST).status_code
        except tskit.ThingSpaceError as error:
            return error


@pytest.mark.server
def test_a_refusal_is_not_sent_again_under_another_spelling_of_the_same_server() -> None:
    """Six spellings of one server are one identity: one wrong login, never a locked user."""
    sim = Simulator()
    wrong = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, "wrong-pw")
    with sim.serve() as server:
        port = server.base_url.rsplit(":", 1)[1]
        for host in ["127.0.0.1", "localhost", "LOCALHOST", "Localhost", "localHost", "127.1"]:
            url = f"http://{host}:{port}"
            _call(tskit.ThingSpaceAuth(wrong, base_url=url, remember_refusals=False), url)
        assert sim.count("login") == 1, f"{sim.count('login')} logins with one wrong password"
        assert not sim.is_locked(DEMO_USERNAME)


@pytest.mark.server
def test_reset_lifts_this_process_own_refusal_whatever_the_spelling() -> None:
    sim = Simulator()
    creds = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, "bob", "pw-now")
    with sim.serve() as server:
        port = server.base_url.rsplit(":", 1)[1]
        first, second = f"http://127.0.0.1:{port}", f"http://localhost:{port}"
        refused = _call(tskit.ThingSpaceAuth(creds, base_url=first), first)
        assert getattr(refused, "reason", None) == tskit.Reason.LOGIN_REFUSED
        sim.add_user("bob", "pw-now", ["0000123456-00001"])  # the password is now right
        again = tskit.ThingSpaceAuth(creds, base_url=second)
        again.reset()
        outcome = _call(again, second)
        assert outcome == 200, str(outcome)


@pytest.mark.parametrize(
    "base_url",
    [
        f"https://thingspace.verizon.com/#{SECRET}",
        f"https://thingspace.verizon.com/?{SECRET}",
        f"https://thingspace.verizon.com/?x=1#access_token={SECRET}",
    ],
)
def test_a_refused_base_url_never_shows_what_its_query_or_fragment_carry(base_url: str) -> None:
    with pytest.raises(tskit.ConfigurationError) as caught:
        tskit.connect(client_id="a", client_secret="b", username="c", password="d", base_url=base_url)
    assert SECRET not in str(caught.value.value_shown)


def test_plan_apply_is_the_twin_of_aapply() -> None:
    assert inspect.signature(Plan.apply) == inspect.signature(Plan.aapply)


@pytest.mark.parametrize("count", ["2", 2.0, -50])
def test_a_malformed_count_of_failed_logins_is_not_read_as_zero(
    count: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TSKIT_CONFIG_DIR", str(tmp_path))
    creds = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, "x")
    url = "https://thingspace.verizon.com"
    path = guard._failures_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({guard._user_key(url, creds): {"username": DEMO_USERNAME, "count": count}}))
    try:
        counted, _ = guard.reserve(url, creds)
    except (guard.DamagedRecord, guard.TooManyFailedLogins):
        return  # damaged: nothing sent
    assert counted >= 3, f"the record's {count!r} was read as {counted - 1}"
