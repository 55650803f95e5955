"""Each login failure says its remedy once, in each surface's words, and its reason agrees with its text."""

from __future__ import annotations

import pytest

import tskit
from tests.conftest import FakeClock, make_client
from tskit._errors import Reason, Remedy
from tskit.cli import cli_words
from tskit.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME, Fault, Simulator
from tskit.simulator._config import SimulatorConfig
from tskit.widgets._common import plain_words

pytestmark = pytest.mark.anyio
ACCOUNT = "0000123456-00001"
WRONG_PASSWORD = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, "not-the-password")


def renderings(error: tskit.ThingSpaceError) -> list[str]:
    return [str(error), cli_words(error), plain_words(error)]


async def twice(sim: Simulator, clock: FakeClock, credentials: tskit.Credentials) -> list[Exception]:
    """The error of a first call and of the next one (which sends nothing), through one client."""
    errors: list[Exception] = []
    async with make_client(sim, clock, credentials=credentials) as client:
        for _ in range(2):
            with pytest.raises(tskit.AuthenticationError) as caught:
                await client.list_callbacks(ACCOUNT)
            errors.append(caught.value)
    return errors


async def faulted(sim: Simulator, clock: FakeClock, fault: Fault, timeout: float = 10.0) -> tskit.AuthenticationError:
    """The error of one call whose login meets ``fault``."""
    sim.faults.scripted.append(fault)
    async with make_client(sim, clock, timeout=timeout) as client:
        with pytest.raises(tskit.AuthenticationError) as caught:
            await client.list_callbacks(ACCOUNT)
    return caught.value


async def test_a_locked_user_is_told_to_have_it_unlocked_then_to_lift_the_record_once(clock: FakeClock) -> None:
    sim = Simulator(SimulatorConfig(lockout_after=1), clock=FakeClock())
    async with make_client(sim, clock, credentials=WRONG_PASSWORD) as client:  # one failed login locks the user
        with pytest.raises(tskit.AuthenticationError):
            await client.list_callbacks(ACCOUNT)
    right = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, DEMO_PASSWORD)
    locked, not_sent = await twice(sim, clock, right)
    assert sim.count("login") == 2  # the second call of the locked user sent nothing
    for error in (locked, not_sent):
        assert isinstance(error, tskit.AuthenticationError)
        assert (error.reason, error.remedy) == (Reason.USER_LOCKED, Remedy("unlock-user"))
        for text in renderings(error):
            assert text.lower().count("have verizon support unlock the user") == 1, text
            assert text.count("reset-login") == 1 and "Contact Verizon support, then" not in text, text
            assert "Fix the credentials" not in text and "fix the credentials" not in text, text
        # Python names what exists: the flow's reset, reached from the facade as ts.client.auth
        assert "ts.client.auth.reset()" in str(error) and " reset()" not in str(error)


async def test_a_wrong_application_secret_asks_for_the_client_id_and_secret(sim: Simulator, clock: FakeClock) -> None:
    wrong_secret = tskit.Credentials(DEMO_CLIENT_ID, "wrong-secret", DEMO_USERNAME, DEMO_PASSWORD)
    refused, not_sent = await twice(sim, clock, wrong_secret)
    assert (sim.count("token"), sim.count("login")) == (1, 0)
    for error in (refused, not_sent):
        assert isinstance(error, tskit.AuthenticationError)
        assert (error.reason, error.remedy) == (Reason.LOGIN_REFUSED, Remedy("fix-app-credentials"))
        for text in renderings(error):
            assert "user name" not in text and "username" not in text, text
        assert str(error).count("client_secret") == 1
        assert cli_words(error).count("THINGSPACE_CLIENT_SECRET") == 1
    assert "key or secret is wrong" in str(refused)


async def test_an_uncertain_login_says_check_the_password_once(sim: Simulator, clock: FakeClock) -> None:
    error = await faulted(sim, clock, Fault(status=400, operations=("login",)))
    assert (error.reason, error.remedy) == (Reason.LOGIN_UNCERTAIN, Remedy("fix-credentials"))
    assert str(error).count("user name and password") == 1 and "Not tried again at once" in str(error)


async def test_a_passing_401_to_the_token_request_is_not_called_a_refusal(sim: Simulator, clock: FakeClock) -> None:
    error = await faulted(sim, clock, Fault(status=401, operations=("token",)))
    assert (error.status_code, error.reason, error.remedy) == (401, Reason.LOGIN_FAILED, Remedy("run-again"))
    assert "failed for a passing reason" in str(error) and "refused" not in plain_words(error)


async def test_a_throttle_says_what_thingspace_asked_and_what_tskit_waits(sim: Simulator, clock: FakeClock) -> None:
    error = await faulted(sim, clock, Fault(status=429, retry_after=120, operations=("login",)), timeout=5)
    assert isinstance(error, tskit.LoginThrottled)  # the call's 5 s are too short to wait it out
    assert (error.reason, error.asked, error.retry_after) == (Reason.THROTTLE_OUTLASTS_DEADLINE, 120, 60)
    assert error.remedy == Remedy("wait", seconds=60)
    assert "asked to wait 120 s; tskit waits 60.0 s before the next login" in str(error)
    for text in renderings(error):
        assert "Run again later" not in text and text.count("60 s") == 1, text
    shown = plain_words(error)
    assert shown.startswith("ThingSpace is throttling logins (") and "  " not in shown and "refused" not in shown


async def test_the_widgets_say_a_second_wrong_password_without_speaking_of_unlocking(
    sim: Simulator, clock: FakeClock
) -> None:
    first, again = await twice(sim, clock, WRONG_PASSWORD)
    assert isinstance(again, tskit.AuthenticationError)
    assert (again.reason, again.remedy) == (Reason.LOGIN_REFUSED, Remedy("reset-login"))
    for error in (first, again):
        shown = plain_words(error)
        assert shown.startswith("ThingSpace refused the login (") and "unlock" not in shown, shown
        assert "  " not in shown
    assert str(again).count("reset-login") == 0 and "ts.client.auth.reset()" in str(again)
    assert cli_words(again).count("`tskit reset-login`") == 1
