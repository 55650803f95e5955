"""The async ThingSpace callbacks client: its three calls and the listing rule for "what is there".

Sending, with retries within the call's deadline, is :mod:`tskit._sending`; a register or
deregister confirmed by listing is :mod:`tskit._confirm`. Nothing else in tskit retries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import weakref
from collections.abc import AsyncGenerator, Collection
from types import TracebackType
from typing import Any, Final, Self

import httpx2

from tskit import _validate as check
from tskit._config import CALLBACK_PATH, CALLBACKS_PATH, LOGOUT_PATH, Credentials
from tskit._config import base_url as check_base_url
from tskit._confirm import Holds, not_registered, registered_as, send_confirmed, unexpected
from tskit._errors import ConfigurationError, ThingSpaceError, UnexpectedResponseError, excerpt, url_secrets
from tskit._models import Callback, CallbackActionResult, Listing, ListingReason
from tskit._retry import RetryPolicy
from tskit._runtime import runtime
from tskit._sending import send
from tskit._transport import make_client
from tskit._version import __version__
from tskit.auth import ThingSpaceAuth

logger = logging.getLogger("tskit.http")

USER_AGENT: Final = f"thingspace-tskit/{__version__}"
#: Most callbacks a list answer may hold before it is treated as malformed (23 services exist).
_MAX_LIST_ITEMS: Final = 10_000
#: Most listener passwords a client remembers to scrub them from error texts.
_MAX_KNOWN_SECRETS: Final = 100_000
#: Listings in a row that must show an absence before it is certain. With two, 5% of empty answers
#: made 2 of 120 rotated registrations "no longer registered" falsely in the scale run (p² per check).
_ABSENCE_LISTINGS: Final = 3
#: Listings in a row that must show no listener at all before an export or rotation takes the account
#: as empty: it is written so, and a prune of the file deletes what it lacks. At three (p³ per
#: account), the scale run of 250 accounts with 5% of empty answers wrote one empty now and then.
_EMPTY_LISTINGS: Final = 5
#: Most listings read to settle what an account holds (a run in a row agreeing, after a disagreement).
_MAX_LISTINGS: Final = 8


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
            # An in-process server lives and dies with this process, and every one has the same
            # address: records on disk would speak for it to other processes and later runs.
            in_process = getattr(transport, "realm", None) is not None  # the simulator's transport names its server
            auth = ThingSpaceAuth(
                credentials, base_url=self.base_url, timeout=timeout, realm=realm, remember_refusals=not in_process
            )
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
        """Close the connections this client opened on the running event loop.

        On the loop of the main thread's blocking calls (``ts.close()`` in a script), the connections
        that its blocking calls from other threads opened on tskit's I/O loop are closed too.
        """
        loop = asyncio.get_running_loop()
        http = self._http.pop(loop, None)
        ender = self._loop_enders.pop(loop, None)
        runtime.unregister(loop, self)
        if ender is not None:
            await ender.aclose()  # its ``finally`` closes ``http``, and the cycle through it is gone
        elif http is not None:
            await http.aclose()
        io_loop = runtime.running_io_loop()
        if runtime.is_main_loop(loop) and io_loop is not None and io_loop in self._http:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.aclose(), io_loop))

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
        path = CALLBACKS_PATH.format(account=check.path_segment(account))
        result = await self._mutate("POST", path, body, account, service, registered_as(service, target, user, secret))
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
        path = CALLBACK_PATH.format(account=check.path_segment(account), service=check.path_segment(service))
        return await self._mutate("DELETE", path, None, account, service, not_registered(service))

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
                    raise unexpected(response, "expected a JSON array of callbacks")
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
            raise unexpected(response, f"a callback in the list is malformed: {problem}") from None

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
        raise unexpected(response, problem)

    def _remember_secret(self, value: str) -> None:
        if value and value not in self._listener_secrets:
            if len(self._listener_secrets) >= _MAX_KNOWN_SECRETS:
                del self._listener_secrets[next(iter(self._listener_secrets))]
            self._listener_secrets[value] = None

    def _known_secrets(self) -> tuple[str, ...]:
        """Every secret this client knows now: its login secrets and each listener password sent or read."""
        return (*self.auth.secret_values(), *self._listener_secrets)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: dict[str, str] | None = None,
        retry: bool = True,
        extra_secrets: tuple[str, ...] = (),
    ) -> httpx2.Response:
        """Send one call within this client's timeout, with the retries :mod:`tskit._sending` allows."""
        http = self._client()  # a ConfigurationError (an unusable proxy variable) before anything is sent
        return await send(
            http,
            method,
            self.base_url + path,
            path,
            timeout=self._timeout,
            retry=self.retry if retry else None,
            login_secrets=self.auth.secret_values,
            json_body=json_body,
            extra_secrets=extra_secrets,
        )

    async def _mutate(
        self, method: str, path: str, body: dict[str, str] | None, account: str, service: str, holds: Holds
    ) -> CallbackActionResult:
        """Send a register or deregister, confirmed by listing when its outcome is uncertain (:mod:`tskit._confirm`)."""
        return await send_confirmed(
            method,
            path,
            account,
            service,
            holds,
            send=lambda: self._send(method, path, json_body=body, extra_secrets=self._known_secrets()),
            list_account=lambda: self._list(account),
            retry=self.retry,
            secrets=self._known_secrets,
        )
