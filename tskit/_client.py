"""The async ThingSpace callbacks client: the one place that does HTTP, maps errors and retries."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import logging
import secrets
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Collection
from types import TracebackType
from typing import Any, Final, Self

import httpx2

from tskit import _validate as check
from tskit._config import CALLBACK_PATH, CALLBACKS_PATH, LOGOUT_PATH, Credentials
from tskit._config import base_url as check_base_url
from tskit._errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    RequestTimeout,
    ThingSpaceError,
    TransportError,
    UnexpectedResponseError,
    error_from_response,
    excerpt,
    url_secrets,
)
from tskit._models import Callback, CallbackActionResult, Listing, ListingReason
from tskit._retry import RetryPolicy
from tskit._runtime import runtime
from tskit._transport import as_tskit_error, make_client
from tskit._version import __version__
from tskit.auth import CALL_DEADLINE, ThingSpaceAuth

logger = logging.getLogger("tskit.http")

USER_AGENT: Final = f"thingspace-tskit/{__version__}"
#: Most callbacks a list answer may hold before it is treated as malformed (23 services exist).
_MAX_LIST_ITEMS: Final = 10_000
#: Most listener passwords a client remembers to scrub them from error texts.
_MAX_KNOWN_SECRETS: Final = 100_000
#: 4xx answers to a resent register after which a listing decides (the first attempt may have applied).
_CHECK_STATUSES: Final = frozenset({400, 404, 409, 410})
#: Words of error codes that blame the input itself (then no listing can make the call succeed).
_INPUT_WORDS: Final = ("servicename", "accountname", "accountnotfound", "account_not_found")
#: Note of a failed mutation a listing does not show: it may also have applied and been overwritten since.
_NOT_SHOWN: Final = (
    "the listing does not show it now: it did not take effect, or another caller changed the listener since"
)
#: Listings in a row that must show an absence before it is certain. With two, 5% of empty answers
#: made 2 of 120 rotated registrations "no longer registered" falsely in the scale run (p² per check).
_ABSENCE_LISTINGS: Final = 3
#: Listings in a row that must show no listener at all before an export or rotation takes the account
#: as empty: it is written so, and a prune of the file deletes what it lacks. At three (p³ per
#: account), the scale run of 250 accounts with 5% of empty answers wrote one empty now and then.
_EMPTY_LISTINGS: Final = 5
#: Most listings read to settle what an account holds (a run in a row agreeing, after a disagreement).
_MAX_LISTINGS: Final = 8
# Key of the fingerprints a register compares passwords by; random per process, never stored.
_COMPARE_KEY: Final = secrets.token_bytes(32)


class ThingSpaceClient:
    """Async client for the three Connectivity Management callbacks calls.

    Every method validates its input first (a :class:`~tskit.ValidationError` means nothing was
    sent), then sends one request through the auth flow, retrying passing failures as
    :class:`~tskit.RetryPolicy` allows.

    Examples:
        >>> async with ThingSpaceClient(credentials) as client:  # doctest: +SKIP
        ...     callbacks = await client.list_callbacks("0000123456-00001")

    Args:
        credentials: Application key/secret and UWS user/password; ignored when ``auth`` is given.
        base_url: ThingSpace host root; default ``THINGSPACE_BASE_URL`` or production.
        auth: A ready auth flow, e.g. one shared by several clients.
        transport: An httpx2 transport, e.g. the embedded simulator's. By default httpx2's own
            connection pool, one per event loop (see ``tskit._transport``).
        timeout: Seconds to wait for ThingSpace on each request (httpx2's connect, read, write and pool
            timeouts), and at most for a login that another call, thread or process is doing.
        retry: The retry policy.
        limits: Connection pool limits, as :class:`httpx2.Limits` documents them (per event loop).
    """

    def __init__(
        self,
        credentials: Credentials | None = None,
        *,
        base_url: str | None = None,
        auth: ThingSpaceAuth | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        limits: httpx2.Limits | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url)
        if auth is None:
            if credentials is None:
                credentials = Credentials.from_env()
            if credentials is None:
                raise ConfigurationError(
                    "credentials",
                    "none given and no THINGSPACE_* variables set",
                    "pass credentials, or use tskit.connect() for the embedded simulator",
                )
            realm = None if transport is None else getattr(transport, "realm", transport)
            auth = ThingSpaceAuth(credentials, base_url=self.base_url, timeout=timeout, realm=realm)
        elif transport is not None:
            auth.bind_realm(getattr(transport, "realm", transport))
        self.auth = auth
        self.retry = retry or RetryPolicy()
        self._transport = transport
        self._timeout = timeout
        self._limits = limits or httpx2.Limits(max_connections=100, max_keepalive_connections=50)
        # An httpx2.AsyncClient (its pool, its locks) belongs to one event loop: keep one per loop.
        self._http: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx2.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._loop_enders: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncGenerator[None]] = (
            weakref.WeakKeyDictionary()
        )
        # Every listener password sent or read, to scrub from error texts (a dict keeps insertion order).
        self._listener_secrets: dict[str, None] = {}

    def __repr__(self) -> str:
        return f"<ThingSpaceClient {self.base_url} user={self.auth.username!r}>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections this client opened on the running event loop."""
        loop = asyncio.get_running_loop()
        http = self._http.pop(loop, None)
        ender = self._loop_enders.pop(loop, None)
        if runtime.is_io_loop(loop):
            runtime.unregister(self)
        if ender is not None:
            await ender.aclose()  # its ``finally`` closes ``http``, and the cycle through it is gone
        elif http is not None:
            await http.aclose()

    def _client(self) -> httpx2.AsyncClient:
        loop = asyncio.get_running_loop()
        http = self._http.get(loop)
        if http is None:
            http = make_client(
                self.base_url,
                auth=self.auth,
                transport=self._transport,
                timeout=self._timeout,
                limits=self._limits,
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            )
            self._http[loop] = http
            runtime.register(loop, self, http.aclose)
            self._close_when_loop_ends(loop, http)
        return http

    def _close_when_loop_ends(self, loop: asyncio.AbstractEventLoop, http: httpx2.AsyncClient) -> None:
        """Close ``http`` when ``loop`` shuts down its async generators (``asyncio.run`` does, at its end).

        An async generator started on ``loop`` is registered with it; ``loop.shutdown_asyncgens()``
        closes it, which runs its ``finally``: the client's sockets are closed and the entry that
        would keep the loop alive is dropped.
        """

        async def until_the_loop_ends() -> AsyncGenerator[None]:
            try:
                yield
            finally:
                if self._http.get(loop) is http:
                    del self._http[loop]
                self._loop_enders.pop(loop, None)
                await http.aclose()

        ender = until_the_loop_ends()
        step = ender.asend(None)  # registers the generator with the running loop's hooks
        try:
            step.send(None)
        except StopIteration:
            self._loop_enders[loop] = ender  # the loop keeps only a weak reference

    # -- the three calls --------------------------------------------------------------

    async def list_callbacks(self, account_name: str) -> list[Callback]:
        """List the callback listeners registered for an account.

        Args:
            account_name: The billing account, e.g. ``"0000123456-00001"``.

        Returns:
            One record per registered service, from one listing. An empty list means ThingSpace
            answered with an empty body, which it does both when nothing is registered and when
            something went wrong: it is not evidence of absence. :meth:`listing` tells which.
        """
        account = check.account_name(account_name)
        return await self._list(account)

    async def listing(self, account_name: str, *, expect: Collection[str] = (), confirm_all: bool = False) -> Listing:
        """List an account's listeners and say whether the answer is certain: the one rule for "what is there".

        A listener a listing shows is taken as there. Absence is not: an answer that shows no
        listener at all, or lacks a service of ``expect``, is read again until three listings in
        a row show the same services (an empty answer alone proves nothing; two in a row were
        measured not to be enough when ThingSpace answers 5% of listings empty). With
        ``confirm_all``, every answer is confirmed the same way (a partial answer leaves services
        out: each is an absence), and an answer with no listener at all needs five in a row. At
        most eight listings are read; when they do not settle it, or a
        confirming listing cannot be read, the result is uncertain (``certain=False`` with its
        ``reason``), never "no listeners".

        Args:
            account_name: The billing account.
            expect: Services whose absence must be confirmed (e.g. those a plan saw there).
            confirm_all: Confirm every answer, not only absences: what an export writes must be
                all the account holds, since applying it with prune deletes what it lacks.

        Raises:
            ThingSpaceError: The first listing could not be read.
        """
        account = check.account_name(account_name)
        wanted = frozenset(expect)
        callbacks = await self._list(account)
        reads = streak = 1  # listings read; the last ones in a row that showed the same services

        def uncertain(reason: ListingReason, detail: str) -> Listing:
            return Listing(account, tuple(callbacks), certain=False, reason=reason, detail=detail, reads=reads)

        while True:
            names = {cb.service_name for cb in callbacks}
            absence = not names or not wanted <= names
            if not absence and not confirm_all:
                return Listing(account, tuple(callbacks), reads=reads)  # what a listing shows is there
            # Every answer confirmed (confirm_all): any service may be missing from one, so each is an
            # absence to confirm as above (a partial answer is no evidence either).
            if streak >= (_EMPTY_LISTINGS if confirm_all and not names else _ABSENCE_LISTINGS):
                return Listing(account, tuple(callbacks), reads=reads)
            if reads >= _MAX_LISTINGS:
                return uncertain("listings-disagree", f"{reads} listings did not agree on the services held")
            try:
                again = await self._list(account)
            except ThingSpaceError as exc:
                shown = "showed no listener" if not callbacks else "was not confirmed"
                return uncertain(
                    "unconfirmed", f"the listing {shown}, and no further listing could be read to confirm it: {exc}"
                )
            reads += 1
            streak = streak + 1 if {cb.service_name for cb in again} == names else 1
            callbacks = again

    async def register_callback(
        self,
        account_name: str,
        service_name: str,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        allow_any_port: bool = False,
        allow_unknown_service: bool = False,
    ) -> CallbackActionResult:
        """Register the listener of one service of an account, replacing any listener it had.

        Register is an upsert: ThingSpace keeps one listener per service, so registering a service
        again replaces its URL, username and password (this is how a password is rotated).

        When an attempt's outcome is uncertain (timeout, dropped answer, 5xx, an answer that is
        not the documented one), a fresh listing decides, compared on the URL, username and
        password: if it shows exactly what was asked the call returns (``outcome="confirmed"``);
        if it shows the old state, the request is sent again as the retry policy allows
        (``outcome="resent"``), and when the retry policy allows no more it raises. A returned
        result means ThingSpace held what was asked when it was checked.

        Concurrent writers race: ThingSpace keeps the last register of a service. If another caller
        registers the same service between this call's attempt and its listing, the listing shows
        the other caller's listener; this call then sends its own again (overwriting the other),
        or raises saying the listing does not show it now. Serialise the writers of one service.

        Args:
            account_name: The billing account.
            service_name: A service of :data:`~tskit.SERVICE_CATALOGUE`, e.g. ``"CarrierService"``.
            url: Where ThingSpace will POST the messages (http/https, an allowed port).
            username: Sent back inside every message, at most 40 characters; not the login user.
            password: Sent back inside every message, at most 40 characters; never shown, and
                never one of the client's own login secrets.
            allow_any_port: Skip the check against ThingSpace's listener ports.
            allow_unknown_service: Accept a service name the catalogue does not know.

        Raises:
            ValidationError: Bad input; nothing was sent.
            ThingSpaceError: ThingSpace may not hold what was asked (see the error's notes).
        """
        account = check.account_name(account_name)
        service = check.service_name(service_name, allow_unknown=allow_unknown_service)
        target = check.listener_url(url, allow_any_port=allow_any_port)
        user = check.credential("username", username)
        secret = check.credential("password", password)
        self.check_listener_credentials(user, secret)
        body: dict[str, str] = {"name": service, "url": target}
        if user:
            body["username"] = user
        if secret:
            body["password"] = secret
            self._remember_secret(secret)
        wanted = _password_fingerprint(secret)  # the comparison keeps no copy of the password

        def holds(callbacks: list[Callback]) -> bool:
            return any(
                cb.service_name == service
                and cb.url == target
                and cb.username == user
                and cb.password_listed  # a listing without the password cannot confirm it
                and hmac.compare_digest(_password_fingerprint(cb.password.reveal()), wanted)
                for cb in callbacks
            )

        path = CALLBACKS_PATH.format(account=check.path_segment(account))
        result = await self._mutate("POST", path, body, account, service, holds)
        return dataclasses.replace(result, url=target)

    def check_listener_credentials(self, username: str, password: str) -> None:
        """Refuse listener credentials that are, or look like, this client's own login credentials.

        Verizon forbids the UWS credentials as a listener's: ThingSpace would send them inside
        every message. Bulk operations (plans, rotations) call this before sending anything.

        Raises:
            ValidationError: ``username`` or ``password`` is one of the login credentials.
        """
        check.not_login_credentials(
            username, password, login_username=self.auth.username, login_secrets=self.auth.secret_values()
        )

    async def deregister_callback(
        self, account_name: str, service_name: str, *, allow_unknown_service: bool = False
    ) -> CallbackActionResult:
        """Stop ThingSpace sending the messages of one service of an account.

        When an attempt's outcome is uncertain, or ThingSpace answers that the service has no
        listener, fresh listings decide: absence must show in two independent listings (an empty
        answer alone proves nothing), then the call returns (``outcome="confirmed"``); else the
        request is sent again as the retry policy allows.

        Args:
            account_name: The billing account.
            service_name: The service to deregister.
            allow_unknown_service: Accept a service name the catalogue does not know.

        Raises:
            ValidationError: Bad input; nothing was sent.
            ThingSpaceError: The listener may still be registered (see the error's notes).
        """
        account = check.account_name(account_name)
        service = check.service_name(service_name, allow_unknown=allow_unknown_service)

        def holds(callbacks: list[Callback]) -> bool:
            return all(cb.service_name != service for cb in callbacks)

        path = CALLBACK_PATH.format(account=check.path_segment(account), service=check.path_segment(service))
        return await self._mutate("DELETE", path, None, account, service, holds)

    async def logout(self) -> None:
        """End the M2M session, if one is open. The next call logs in again."""
        if not self.auth.has_session:
            return
        try:
            await self._send("POST", LOGOUT_PATH, retry=False)
        finally:
            self.auth.forget_session()

    # -- helpers ----------------------------------------------------------------------

    async def _list(self, account: str) -> list[Callback]:
        path = CALLBACKS_PATH.format(account=check.path_segment(account))
        attempt = 0
        while True:  # a garbled answer to a read is read again, as the retry policy allows
            attempt += 1
            response = await self._send("GET", path, extra_secrets=self._known_secrets())
            if not response.content.strip():
                return []  # ThingSpace's documented answer for "no callbacks registered"
            try:
                data = self._decode(response)
                if not isinstance(data, list) or len(data) > _MAX_LIST_ITEMS:
                    raise self._unexpected(response, "expected a JSON array of callbacks")
                break
            except UnexpectedResponseError as exc:
                delay = self.retry.delay(attempt, None)
                if delay is None:
                    raise
                logger.info("GET %s: %s (try %d)", path, exc, attempt)
                await asyncio.sleep(delay)
        for item in data:  # remember the passwords first, so that no error below can show one
            if isinstance(item, dict):
                if isinstance(item.get("password"), str):
                    self._remember_secret(item["password"])
                if isinstance(item.get("url"), str):
                    for password in url_secrets(item["url"]):
                        self._remember_secret(password)
        try:
            return [Callback.from_wire(item, account) for item in data]
        except (ValueError, TypeError, AttributeError) as exc:
            problem = excerpt(str(exc), self._known_secrets())
            raise self._unexpected(response, f"a callback in the list is malformed: {problem}") from None

    async def _mutate(
        self,
        method: str,
        path: str,
        body: dict[str, str] | None,
        account: str,
        service: str,
        holds: Callable[[list[Callback]], bool],
    ) -> CallbackActionResult:
        """Send a register or deregister until a clear answer or a fresh listing shows it took effect.

        ``holds`` tells whether a listing shows the account as asked. The request is sent again
        only after a listing showed it had not taken effect, as the retry policy allows.
        """
        sends = 0
        not_registered = False  # ThingSpace's answer to the first attempt: the service had no listener
        while True:
            sends += 1
            failure: ThingSpaceError
            retry_after: float | None = None
            try:
                response = await self._send(method, path, json_body=body, extra_secrets=self._known_secrets())
            except AuthenticationError:
                raise  # the login was refused: no listing can be read either
            except ApiError as exc:
                if not _may_hold_already(exc, method, resent=sends > 1):
                    raise  # ThingSpace refused it: nothing changed
                not_registered = sends == 1 and "notregistered" in exc.error_code.casefold()
                failure, retry_after = exc, exc.retry_after
            except (TransportError, UnexpectedResponseError) as exc:
                failure = exc  # it may or may not have reached ThingSpace
            else:
                problem = self._action_problem(response, account, service)
                if not problem:
                    return CallbackActionResult(
                        account,
                        service,
                        outcome="sent" if sends == 1 else "resent",
                        was_registered=True if method == "DELETE" else None,
                    )
                failure = self._unexpected(response, problem)
            logger.info("%s %s: outcome uncertain (%s); listing the account to decide", method, path, failure)
            callbacks = await self._list_to_decide(account, failure)
            if holds(callbacks) and method == "DELETE":
                # Absence is what a faulty answer (an empty body, "[]") also looks like: a second,
                # independent listing must agree before a deregister counts as done.
                callbacks = await self._list_to_decide(account, failure)
            if holds(callbacks):
                logger.info("%s %s: a listing shows it took effect", method, path)
                had = False if method == "DELETE" and not_registered and sends == 1 else None
                return CallbackActionResult(account, service, outcome="confirmed", was_registered=had)
            delay = self.retry.delay(sends, retry_after)
            if delay is None:
                failure.may_have_applied = True  # sent, and no listing shows it: it may have applied since
                raise _with_note(failure, _NOT_SHOWN)
            await asyncio.sleep(delay)

    async def _list_to_decide(self, account: str, failure: ThingSpaceError) -> list[Callback]:
        """A fresh listing, tried again also after a 4xx (e.g. a session that expired twice in a row).

        When no listing can be read, ``failure`` is raised with a note that the outcome is unknown.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._list(account)
            except ApiError as exc:
                delay = self.retry.delay(attempt, exc.retry_after)
                if isinstance(exc, AuthenticationError) or exc.status_code >= 500 or delay is None:
                    break  # (5xx were retried inside already)
                await asyncio.sleep(delay)
            except ThingSpaceError:
                break
        failure.may_have_applied = True  # no listing could say whether the change took effect
        raise _with_note(failure, "the outcome is unknown: list the account's callbacks to see") from None

    def _action_problem(self, response: httpx2.Response, account: str, service: str) -> str:
        """What is odd about a 2xx answer to a register or deregister, or ``""`` when it is as documented.

        An empty, partial or foreign answer does not say the change was refused: the caller decides
        by a listing.
        """
        try:
            data = json.loads(response.content)
        except ValueError:
            return f"body is not JSON: {excerpt(response.content, self._known_secrets())!r}"
        if not isinstance(data, dict):
            return "expected a JSON object with accountName and serviceName"
        try:
            result = CallbackActionResult.from_wire(data)
        except ValueError as exc:
            return str(exc)
        if (result.account_name, result.service_name) != (account, service):
            return "the answer names another account or service"
        return ""

    def _decode(self, response: httpx2.Response) -> Any:
        """A list answer's JSON. Its body is never quoted in an error: it holds listener passwords."""
        try:
            return json.loads(response.content)
        except json.JSONDecodeError as exc:
            problem = f"body is not JSON ({len(response.content)} bytes; {exc.msg} at position {exc.pos})"
        except ValueError:
            problem = f"body is not JSON ({len(response.content)} bytes; not valid UTF-8)"
        except RecursionError:  # json.loads recurses once per nesting level
            problem = f"body is not usable JSON ({len(response.content)} bytes; nested too deeply)"
        raise self._unexpected(response, problem)

    def _remember_secret(self, value: str) -> None:
        if value and value not in self._listener_secrets:
            if len(self._listener_secrets) >= _MAX_KNOWN_SECRETS:
                del self._listener_secrets[next(iter(self._listener_secrets))]
            self._listener_secrets[value] = None

    def _known_secrets(self) -> tuple[str, ...]:
        """Every secret this client knows now: its login secrets and each listener password sent or read."""
        return (*self.auth.secret_values(), *self._listener_secrets)

    @staticmethod
    def _unexpected(response: httpx2.Response, problem: str) -> UnexpectedResponseError:
        return UnexpectedResponseError(
            problem, status_code=response.status_code, method=response.request.method, path=response.request.url.path
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: dict[str, str] | None = None,
        retry: bool = True,
        extra_secrets: tuple[str, ...] = (),
    ) -> httpx2.Response:
        """Send one call, with retries; the only place tskit talks HTTP.

        A register or deregister is retried here only when it cannot have reached ThingSpace
        (connection refused, 429); any other failure is raised for :meth:`_mutate` to decide.

        Returns:
            The successful response.
        """
        http = self._client()  # a ConfigurationError (an unusable proxy variable) before anything is sent
        # The call's overall deadline: login waits, lock waits, the login, retries and their sleeps.
        deadline = time.monotonic() + self._timeout
        token = CALL_DEADLINE.set(deadline)
        try:
            return await self._send_until(http, method, path, deadline, json_body, retry, extra_secrets)
        finally:
            CALL_DEADLINE.reset(token)

    async def _send_until(
        self,
        http: httpx2.AsyncClient,
        method: str,
        path: str,
        deadline: float,
        json_body: dict[str, str] | None,
        retry: bool,
        extra_secrets: tuple[str, ...],
    ) -> httpx2.Response:
        idempotent = method == "GET"
        url = self.base_url + path  # absolute: httpx2 then parses it once instead of merging it twice
        headers = {"Content-Type": "application/json"}  # Verizon's pages require it on every call
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            failure: ThingSpaceError
            retry_after: float | None = None
            left = deadline - time.monotonic()
            if left <= 0:
                raise RequestTimeout(
                    f"the call's timeout of {self._timeout:g} s ran out before try {attempt}", method=method, path=path
                )
            try:
                response = await http.request(method, url, json=json_body, headers=headers, timeout=left)
            except ThingSpaceError:
                raise  # from the auth flow: a login's failure, handed to every waiter and never retried
            except (httpx2.HTTPError, httpx2.StreamError, httpx2.InvalidURL) as exc:  # all below HTTP
                failure, reached = as_tskit_error(exc, method=method, path=path, timeout=f"{self._timeout:g} s")
            else:
                logger.debug(
                    "%s %s -> %s in %.1f ms", method, path, response.status_code, (time.perf_counter() - started) * 1e3
                )
                if response.is_success:
                    return response
                answered = error_from_response(
                    response.status_code,
                    response.content,
                    method=method,
                    path=path,
                    retry_after=response.headers.get("Retry-After"),
                    reason=response.reason_phrase,
                    secrets=(*self.auth.secret_values(), *extra_secrets),
                )
                if not retry or response.status_code not in self.retry.statuses:
                    raise answered
                failure, retry_after = answered, answered.retry_after
                reached = response.status_code != 429  # a 429 is refused before any work is done
            logger.info("%s %s failed (try %d): %s", method, path, attempt, failure)
            if not retry:
                raise failure
            if not idempotent and reached:
                raise failure
            delay = self.retry.delay(attempt, retry_after)
            if delay is None:
                raise failure
            left = deadline - time.monotonic()
            if delay >= left:  # the wait alone would outlast the call's timeout: fail now, saying so
                wait = "ThingSpace's Retry-After" if retry_after is not None else "The wait before another try"
                left_text = f"{max(left, 0):.1f} s left of timeout={self._timeout:g}"
                raise _with_note(failure, f"{wait} of {delay:g} s is longer than the {left_text}")
            await asyncio.sleep(delay)


def _may_hold_already(error: ApiError, method: str, *, resent: bool) -> bool:
    """Whether what was asked may hold despite this error answer, so that a listing must decide.

    A 5xx may come after the change was applied. An HTTP stack may resend a DELETE on its own
    (DELETE is idempotent in HTTP) after its first attempt took effect and the answer was lost, so
    any refusal of a deregister may follow a success: "not registered", an expired session, a 429.
    Only a refusal that blames the input (an invalid service name, an unknown account) is final.
    After an uncertain register was resent, a refusal may likewise come from the first attempt's
    effect (e.g. "already registered").
    """
    if error.status_code >= 500:
        return True
    if method == "DELETE":
        code = error.error_code.casefold()
        return not any(word in code for word in _INPUT_WORDS)
    return resent and error.status_code in _CHECK_STATUSES


def _password_fingerprint(password: str) -> bytes:
    """A keyed digest of a listener password, so that a comparison holds no copy of it."""
    return hmac.new(_COMPARE_KEY, password.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()


def _with_note(error: ThingSpaceError, note: str) -> ThingSpaceError:
    error.add_note(note)
    return error
