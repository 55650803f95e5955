"""The async ThingSpace callbacks client: the one place that does HTTP, maps errors and retries."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final, Self

import httpx

from tskit import _runner
from tskit import _validate as check
from tskit._auth import ThingSpaceAuth
from tskit._config import CALLBACK_PATH, CALLBACKS_PATH, LOGIN_PATH, LOGOUT_PATH, TOKEN_PATH, Credentials
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
    scrub,
)
from tskit._models import Callback, CallbackActionResult
from tskit._retry import RetryPolicy
from tskit._version import __version__

logger = logging.getLogger("tskit.http")

USER_AGENT: Final = f"thingspace-tskit/{__version__}"
#: Most callbacks a list answer may hold before it is treated as malformed (23 services exist).
_MAX_LIST_ITEMS: Final = 10_000


class ThingSpaceClient:
    """Async client for the three Connectivity Management callbacks calls.

    Every method validates its input first (a :class:`~tskit.ValidationError` means nothing was
    sent), then sends one request through the auth flow, retrying passing failures as
    :class:`~tskit.RetryPolicy` allows.

    Example:
        >>> async with ThingSpaceClient(credentials) as client:  # doctest: +SKIP
        ...     callbacks = await client.list_callbacks("0000123456-00001")

    Args:
        credentials: Application key/secret and UWS user/password; ignored when ``auth`` is given.
        base_url: ThingSpace host root; default ``THINGSPACE_BASE_URL`` or production.
        auth: A ready auth flow, e.g. one shared by several clients.
        transport: An httpx transport, e.g. the embedded simulator's. By default each event loop
            gets its own aiohttp-backed transport (see ``tskit._transport`` for why).
        timeout: Seconds to wait for ThingSpace on each request.
        retry: The retry policy.
        limits: Connection pool limits of the underlying ``httpx.AsyncClient``.
    """

    def __init__(
        self,
        credentials: Credentials | None = None,
        *,
        base_url: str | None = None,
        auth: ThingSpaceAuth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        limits: httpx.Limits | None = None,
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
            auth = ThingSpaceAuth(credentials, base_url=self.base_url)
        self.auth = auth
        self.retry = retry or RetryPolicy()
        self._transport = transport
        self._timeout = timeout
        self._limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=50)
        # An httpx.AsyncClient (its pool, its locks) belongs to one event loop: keep one per loop.
        self._http: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

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
        http = self._http.pop(asyncio.get_running_loop(), None)  # (the exit hook then closes it twice: harmless)
        if http is not None:
            await http.aclose()

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        http = self._http.get(loop)
        if http is None:
            transport = self._transport
            if transport is None:
                from tskit._transport import AiohttpTransport, environment_proxy

                transport = AiohttpTransport(limits=self._limits, proxy=environment_proxy(self.base_url))
            http = httpx.AsyncClient(
                base_url=self.base_url,
                auth=self.auth,
                transport=transport,
                timeout=self._timeout,
                limits=self._limits,
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                follow_redirects=False,
            )
            self._http[loop] = http
            _runner.close_at_exit(loop, http.aclose)
        return http

    # -- the three calls --------------------------------------------------------------

    async def list_callbacks(self, account_name: str) -> list[Callback]:
        """List the callback listeners registered for an account.

        Args:
            account_name: The billing account, e.g. ``"0000123456-00001"``.

        Returns:
            One record per registered service; empty when ThingSpace answers with an empty body.
        """
        account = check.account_name(account_name)
        return await self._list(account)

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
        """Register (or replace) the listener URL of one service of an account.

        Args:
            account_name: The billing account.
            service_name: A service of :data:`~tskit.SERVICE_CATALOGUE`, e.g. ``"CarrierService"``.
            url: Where ThingSpace will POST the messages (http/https, an allowed port).
            username: Sent back inside every message, at most 40 characters.
            password: Sent back inside every message, at most 40 characters; never shown.
            allow_any_port: Skip the check against ThingSpace's listener ports.
            allow_unknown_service: Accept a service name the catalogue does not know.
        """
        account = check.account_name(account_name)
        service = check.service_name(service_name, allow_unknown=allow_unknown_service)
        target = check.listener_url(url, allow_any_port=allow_any_port)
        user = check.credential("username", username)
        secret = check.credential("password", password)
        body: dict[str, str] = {"name": service, "url": target}
        if user:
            body["username"] = user
        if secret:
            body["password"] = secret

        async def took_effect() -> bool:
            return any(
                cb.service_name == service and cb.url == target and cb.username == user
                for cb in await self._list(account)
            )

        path = CALLBACKS_PATH.format(account=check.path_segment(account))
        response = await self._send("POST", path, json_body=body, confirm=took_effect, extra_secrets=(secret,))
        return self._action_result(response, account, service)

    async def deregister_callback(
        self, account_name: str, service_name: str, *, allow_unknown_service: bool = False
    ) -> CallbackActionResult:
        """Stop ThingSpace sending the messages of one service of an account.

        Args:
            account_name: The billing account.
            service_name: The service to deregister.
            allow_unknown_service: Accept a service name the catalogue does not know.
        """
        account = check.account_name(account_name)
        service = check.service_name(service_name, allow_unknown=allow_unknown_service)

        async def took_effect() -> bool:
            return all(cb.service_name != service for cb in await self._list(account))

        path = CALLBACK_PATH.format(account=check.path_segment(account), service=check.path_segment(service))
        response = await self._send("DELETE", path, confirm=took_effect)
        return self._action_result(response, account, service)

    async def logout(self) -> None:
        """End the M2M session, if one is open. The next call logs in again."""
        if self.auth._session is None:
            return
        try:
            await self._send("POST", LOGOUT_PATH, retry=False)
        finally:
            self.auth._session = None

    # -- helpers ----------------------------------------------------------------------

    async def _list(self, account: str) -> list[Callback]:
        path = CALLBACKS_PATH.format(account=check.path_segment(account))
        response = await self._send("GET", path)
        assert response is not None  # only mutating calls can end confirmed by a listing
        if not response.content.strip():
            return []  # ThingSpace's documented answer for "no callbacks registered"
        data = self._decode(response)
        if not isinstance(data, list) or len(data) > _MAX_LIST_ITEMS:
            raise self._unexpected(response, "expected a JSON array of callbacks")
        try:
            return [Callback.from_wire(item) for item in data]
        except (ValueError, TypeError, AttributeError) as exc:
            raise self._unexpected(response, f"a callback in the list is malformed: {exc}") from None

    def _action_result(self, response: httpx.Response | None, account: str, service: str) -> CallbackActionResult:
        if response is None:  # the answer was lost, a listing confirmed the outcome
            return CallbackActionResult(account, service, confirmed_by_listing=True)
        data = self._decode(response)
        if not isinstance(data, dict):
            raise self._unexpected(response, "expected a JSON object with accountName and serviceName")
        try:
            return CallbackActionResult.from_wire(data)
        except ValueError as exc:
            raise self._unexpected(response, str(exc)) from None

    def _decode(self, response: httpx.Response) -> Any:
        try:
            return json.loads(response.content)
        except ValueError:
            raise self._unexpected(
                response, f"body is not JSON: {scrub(response.text, self.auth.secret_values())!r}"
            ) from None

    @staticmethod
    def _unexpected(response: httpx.Response, problem: str) -> UnexpectedResponseError:
        return UnexpectedResponseError(
            problem, status_code=response.status_code, method=response.request.method, path=response.request.url.path
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: dict[str, str] | None = None,
        confirm: Callable[[], Awaitable[bool]] | None = None,
        retry: bool = True,
        extra_secrets: tuple[str, ...] = (),
    ) -> httpx.Response | None:
        """Send one call, with retries; the only place tskit talks HTTP.

        Returns:
            The successful response, or ``None`` when a mutating call's answer was lost and
            ``confirm`` showed by listing that it took effect.
        """
        idempotent = method == "GET"
        http = self._client()
        headers = {"Content-Type": "application/json"}  # Verizon's pages require it on every call
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            failure: ThingSpaceError
            retry_after: float | None = None
            try:
                response = await http.request(method, path, json=json_body, headers=headers)
            except AuthenticationError:
                raise
            except httpx.TimeoutException as exc:
                failure = RequestTimeout(f"no answer within {self._timeout:g} s", method=method, path=path)
                reached = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            except httpx.TransportError as exc:
                failure = TransportError(self._describe(exc), method=method, path=path)
                reached = not isinstance(exc, httpx.ConnectError)
            else:
                logger.debug(
                    "%s %s -> %s in %.1f ms", method, path, response.status_code, (time.perf_counter() - started) * 1e3
                )
                if response.is_success:
                    return response
                failure = error_from_response(
                    response.status_code,
                    response.content,
                    method=method,
                    path=path,
                    retry_after=response.headers.get("Retry-After"),
                    reason=response.reason_phrase,
                    secrets=(*self.auth.secret_values(), *extra_secrets),
                )
                assert isinstance(failure, ApiError)
                if not retry or response.status_code not in self.retry.statuses:
                    raise failure
                retry_after = failure.retry_after
                reached = response.status_code != 429  # a 429 is refused before any work is done
            logger.info("%s %s failed (try %d): %s", method, path, attempt, failure)
            if not retry:
                raise failure
            if not idempotent and reached:
                if confirm is None:
                    raise failure
                try:
                    if await confirm():
                        logger.info("%s %s: the answer was lost, a listing shows it took effect", method, path)
                        return None
                except ThingSpaceError:
                    raise _with_note(failure, "the outcome is unknown: list the account's callbacks to see") from None
            delay = self.retry.delay(attempt, retry_after)
            if delay is None:
                raise failure
            await asyncio.sleep(delay)

    @staticmethod
    def _describe(exc: httpx.TransportError) -> str:
        # the login's own requests fail inside the call: name them, not only the call's path
        try:
            failed = exc.request.url.path
        except RuntimeError:  # no request attached
            failed = ""
        step = _LOGIN_STEPS.get(failed, "")
        during = f" during {step}" if step else ""
        if isinstance(exc, httpx.ConnectError):
            return f"could not connect{during} ({exc or type(exc).__name__})"
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
            return f"the connection was dropped{during} ({exc or type(exc).__name__})"
        return f"{exc or type(exc).__name__}{during}"


_LOGIN_STEPS = {
    TOKEN_PATH: f"the OAuth token request (POST {TOKEN_PATH})",
    LOGIN_PATH: f"the session login (POST {LOGIN_PATH})",
}


def _with_note(error: ThingSpaceError, note: str) -> ThingSpaceError:
    error.add_note(note)
    return error
