"""What :func:`tskit.connect` returns: DataFrames, blocking calls, and their async twins."""

from __future__ import annotations

import logging
import os
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from tskit._client import ThingSpaceClient
from tskit._config import BASE_URL_ENV, Credentials
from tskit._errors import ConfigurationError
from tskit._frames import callbacks_frame, services_frame
from tskit._models import CallbackActionResult
from tskit._retry import RetryPolicy
from tskit._runtime import blocking

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    import pandas as pd

    from tskit.audit import Audit, Rule
    from tskit.listener import Listener
    from tskit.simulator import Simulator
    from tskit.state import DesiredState, Plan, RotationResult
    from tskit.state._journal import Journal

logger = logging.getLogger("tskit")

#: Host name used for the in-process simulator; ``.invalid`` can never resolve on a network.
SIMULATOR_URL = "https://simulator.tskit.invalid"


class ThingSpace:
    """A connection to ThingSpace, or to the embedded simulator, for notebooks and scripts.

    Each call exists twice: ``list_callbacks`` blocks until done (scripts, plain notebook cells),
    ``alist_callbacks`` is awaited (``await`` in a notebook cell, async code, widgets).
    Lists come back as pandas DataFrames with the password masked.

    Attributes:
        client: The async client underneath, which returns plain records.
        simulator: The embedded simulator, or ``None`` when connected to a real ThingSpace.
    """

    def __init__(self, client: ThingSpaceClient, *, simulator: Simulator | None = None) -> None:
        self.client = client
        self.simulator = simulator

    def __repr__(self) -> str:
        if self.simulator is not None:
            return f"<ThingSpace: embedded simulator, {len(self.simulator.accounts)} accounts>"
        return f"<ThingSpace: {self.client.base_url} as {self.client.auth.username!r}>"

    @property
    def is_simulator(self) -> bool:
        """Whether this connection is to the embedded simulator."""
        return self.simulator is not None

    # -- list ---------------------------------------------------------------------------

    async def alist_callbacks(self, account_name: str) -> pd.DataFrame:
        """List the callback listeners of an account.

        Args:
            account_name: The billing account, e.g. ``"0000123456-00001"``.

        Returns:
            A DataFrame with columns ``account_name, service_name, url, username, password``
            (the password masked), one row per registered service.
        """
        return callbacks_frame(await self.client.list_callbacks(account_name))

    list_callbacks = blocking(alist_callbacks)

    # -- register -----------------------------------------------------------------------

    async def aregister_callback(
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
        """Register the listener of one service of an account, replacing any it had (an upsert).

        Args:
            account_name: The billing account.
            service_name: A service of :data:`tskit.SERVICE_CATALOGUE`, e.g. ``"CarrierService"``.
            url: Where ThingSpace will POST the messages (http/https, an allowed port).
            username: Sent back inside every message, at most 40 characters.
            password: Sent back inside every message, at most 40 characters; never shown.
            allow_any_port: Skip the check against ThingSpace's listener ports.
            allow_unknown_service: Accept a service name the catalogue does not know.

        Returns:
            The result, with ``.account_name``, ``.service_name`` and ``.outcome`` (``"sent"``,
            ``"resent"`` or ``"confirmed"`` by a listing; see :class:`~tskit.CallbackActionResult`).

        Raises:
            ValidationError: Bad input; nothing was sent.
            ApiError: ThingSpace refused; ``error_code`` and ``error_message`` say why.
        """
        return await self.client.register_callback(
            account_name,
            service_name,
            url,
            username=username,
            password=password,
            allow_any_port=allow_any_port,
            allow_unknown_service=allow_unknown_service,
        )

    register_callback = blocking(aregister_callback)

    # -- deregister ---------------------------------------------------------------------

    async def aderegister_callback(
        self, account_name: str, service_name: str, *, allow_unknown_service: bool = False
    ) -> CallbackActionResult:
        """Stop ThingSpace sending the messages of one service of an account.

        Args:
            account_name: The billing account.
            service_name: The service to deregister.
            allow_unknown_service: Accept a service name the catalogue does not know.
        """
        return await self.client.deregister_callback(
            account_name, service_name, allow_unknown_service=allow_unknown_service
        )

    deregister_callback = blocking(aderegister_callback)

    # -- audit --------------------------------------------------------------------------

    @property
    def source(self) -> str:
        """Where this connection leads, as audits record it."""
        return "embedded simulator" if self.simulator is not None else self.client.base_url

    async def aaudit(
        self,
        accounts: Iterable[str] | str,
        expect: Iterable[str] = (),
        *,
        rules: Iterable[Rule] | None = None,
        concurrency: int = 16,
        progress: bool | None = None,
        fingerprint_key: bytes | str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        allow_unknown_service: bool = False,
    ) -> Audit:
        """Read the callbacks of many accounts at once and check them.

        One authenticated session serves every account; at most ``concurrency`` calls run at once.
        An account that cannot be read is listed in ``.errors``; the others complete.

        Args:
            accounts: Account names (duplicates are read once).
            expect: Services every account should have registered, e.g. ``["CarrierService"]``.
            rules: The rules to run; default :data:`tskit.audit.DEFAULT_RULES`. Add your own with
                :func:`tskit.audit.callback_rule`.
            concurrency: Most accounts read at the same time (1 to 256).
            progress: Show a progress bar: ``None`` in Jupyter or a terminal only.
            fingerprint_key: Key of the password fingerprints kept in snapshots (see
                :mod:`tskit.audit`); default ``TSKIT_FINGERPRINT_KEY`` or tskit's key file.
            on_progress: Called as ``on_progress(done, total)`` after each account.
            allow_unknown_service: Accept an expected service outside ``tskit.SERVICE_CATALOGUE`` (one
                newer than tskit); otherwise a misspelt one is refused before anything is sent.

        Returns:
            An :class:`~tskit.audit.Audit` with ``.callbacks``, ``.findings`` and ``.errors``.

        Raises:
            ValidationError: An account name or option is bad; nothing was sent.
        """
        from tskit.audit import run_audit

        return await run_audit(
            self.client,
            accounts,
            expect=expect,
            rules=rules,
            concurrency=concurrency,
            progress=progress,
            source=self.source,
            fingerprint_key=fingerprint_key,
            on_progress=on_progress,
            allow_unknown_service=allow_unknown_service,
        )

    audit = blocking(aaudit)

    # -- desired state ------------------------------------------------------------------

    async def aplan(
        self,
        desired: DesiredState | Mapping[str, Any] | str | os.PathLike[str],
        *,
        prune: bool = False,
        concurrency: int = 16,
        progress: bool | None = None,
        fingerprint_key: bytes | str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Plan:
        """Compare a desired state with what ThingSpace holds; sends no change.

        Args:
            desired: A :class:`~tskit.state.DesiredState`, a mapping
                ``{account: {service: {"url", "username", "password"}}}``, or a TOML file's path.
            prune: Also plan the deletion of listeners of named accounts that the state does not
                name. Accounts not named are never touched.
            concurrency: Most accounts read at the same time (1 to 256).
            progress: Show a progress bar: ``None`` in Jupyter or a terminal only.
            fingerprint_key: Key of the password fingerprints (see :mod:`tskit.audit`).
            on_progress: Called as ``on_progress(done, total)`` after each account.

        Returns:
            A :class:`~tskit.state.Plan`: ``.changes``, ``.errors``, ``.apply()``.

        Raises:
            ValidationError: The desired state holds a value the client would refuse.
        """
        from tskit.state import make_plan

        return await make_plan(
            self.client,
            desired,
            prune=prune,
            concurrency=concurrency,
            progress=progress,
            fingerprint_key=fingerprint_key,
            source=self.source,
            on_progress=on_progress,
        )

    plan = blocking(aplan)

    async def aexport(
        self,
        accounts: Iterable[str] | str,
        *,
        concurrency: int = 16,
        progress: bool | None = None,
        fingerprint_key: bytes | str | None = None,
        allow_partial: bool = False,
    ) -> DesiredState:
        """What the accounts hold now, as a desired state; ``.save("callbacks.toml")`` writes it.

        Passwords are kept only as fingerprint references ("keep the password it has"). Reads
        that fail for a passing reason are tried again.

        Args:
            accounts: The accounts to export.
            concurrency: Most accounts read at once.
            progress: Show a progress bar: ``None`` in Jupyter or a terminal only.
            fingerprint_key: Key of the password fingerprints.
            allow_partial: Export the accounts that could be read, warn, and list the others in
                ``.unread`` (by default one unreadable account fails the export).

        Raises:
            ExportError: Some accounts could not be read; each is listed with why.
        """
        from tskit.state import export_state

        return await export_state(
            self.client,
            accounts,
            concurrency=concurrency,
            progress=progress,
            fingerprint_key=fingerprint_key,
            allow_partial=allow_partial,
        )

    export = blocking(aexport)

    async def arotate_password(
        self,
        accounts: Iterable[str] | str,
        services: Iterable[str] | str | None = None,
        *,
        new_password: str,
        listener: Listener | None = None,
        concurrency: int = 8,
        journal: str | os.PathLike[str] | Journal | None = None,
        progress: bool | None = None,
        fingerprint_key: bytes | str | None = None,
        include_without_credentials: bool = False,
        allow_http: bool = False,
        allow_unknown_service: bool = False,
        desired: DesiredState | str | os.PathLike[str] | None = None,
        lock_wait: float = 60.0,
        confirm: Callable[[list[tuple[str, str, str]]], bool] | None = None,
    ) -> RotationResult:
        """Move every listener of the accounts (or only of ``services``) to a new password.

        With a running ``listener``, it first accepts the new password while still accepting
        every password it accepted and those still registered for it. Each registration is then
        updated (journaled like an apply), and all are read again to verify the new password's
        fingerprint.

        Afterwards, set the variable a desired-state file names for these passwords
        (``password = { env = ... }``) to the new password: until then ``plan`` shows a password
        change and ``apply`` would put the old one back. Give ``desired`` to have the result
        name those variables.

        Args:
            accounts: The accounts.
            services: Only these services (a name or several), checked against the catalogue.
            new_password: The password to move to.
            listener: A running :class:`~tskit.Listener` receiving these listeners' messages.
            concurrency: Most calls at once.
            journal: The journal to append to (see :meth:`Plan.apply <tskit.state.Plan.apply>`).
            progress: Show a progress bar: ``None`` in Jupyter or a terminal only.
            fingerprint_key: Key of the password fingerprints.
            include_without_credentials: Also give the password to listeners that have no
                username nor password (left alone by default).
            allow_http: Send the password to plain-HTTP listeners off this machine too (refused by
                default: it would travel in clear text in every message).
            allow_unknown_service: Accept service names the catalogue does not know.
            desired: The desired state (or its file) that names these listeners' passwords.
            lock_wait: Longest wait, in seconds, for an account another apply or rotation holds
                (0: refuse at once with :class:`~tskit.state.AccountLockedError`).
            confirm: Asked, once the accounts are read and every check passed and before anything
                is sent, with ``(account, service, url)`` of each listener to move; answering
                ``False`` raises :class:`~tskit.state.RotationDeclined` (nothing sent).

        Returns:
            A :class:`~tskit.state.RotationResult`: ``.outcomes``, ``.journal``, ``.remaining``
            (the listeners still on another password), and ``.next_step``. ``.ok`` is false when
            no listener matched.

        Raises:
            ValidationError: A service is unknown, the listener is stopped, or the password would
                go to a plain-HTTP listener; nothing was sent.
        """
        from tskit.state import rotate

        return await rotate(
            self.client,
            accounts,
            new_password=new_password,
            services=services,
            listener=listener,
            concurrency=concurrency,
            journal=journal,
            progress=progress,
            fingerprint_key=fingerprint_key,
            source=self.source,
            include_without_credentials=include_without_credentials,
            allow_http=allow_http,
            allow_unknown_service=allow_unknown_service,
            desired=desired,
            lock_wait=lock_wait,
            confirm=confirm,
        )

    rotate_password = blocking(arotate_password)

    # -- the rest -----------------------------------------------------------------------

    @staticmethod
    def services() -> pd.DataFrame:
        """The callback services ThingSpace offers, with what each one sends."""
        return services_frame()

    async def aclose(self) -> None:
        """Close the connections this connection opened on the running event loop (tskit's own for blocking calls)."""
        await self.client.aclose()

    close = blocking(aclose)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def connect(
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    username: str | None = None,
    password: str | None = None,
    base_url: str | None = None,
    simulator: bool | Simulator | None = None,
    retry: RetryPolicy | None = None,
    timeout: float = 30.0,
) -> ThingSpace:
    """Connect to ThingSpace, or to the embedded simulator when no credentials are set.

    Credentials come from the arguments, else from ``THINGSPACE_CLIENT_ID``,
    ``THINGSPACE_CLIENT_SECRET``, ``THINGSPACE_USERNAME`` and ``THINGSPACE_PASSWORD``
    (and ``THINGSPACE_BASE_URL``, default ``https://thingspace.verizon.com``). With none of
    them, the embedded simulator with its demo accounts is used: the same one for every such
    connection in the process, so widgets and cells see the same state. Nothing is sent until
    the first call.

    Args:
        client_id: OAuth2 application key.
        client_secret: OAuth2 application secret.
        username: Connectivity Management (UWS) user name.
        password: UWS password.
        base_url: ThingSpace host root.
        simulator: ``True`` for a new embedded simulator of its own, a
            :class:`~tskit.simulator.Simulator` to use that one, ``False`` to insist on real
            credentials, ``None`` to decide from the credentials (and use the shared simulator).
        retry: How passing failures are retried.
        timeout: Seconds to wait for each answer (httpx2's connect, read, write and pool timeouts), and at
            most for a login that another call, thread or process is doing for the same user.

    Returns:
        A :class:`ThingSpace` connection.

    Raises:
        ConfigurationError: Credentials are incomplete, or missing while ``simulator=False``.
    """
    given = {"client_id": client_id, "client_secret": client_secret, "username": username, "password": password}
    credentials: Credentials | None = None
    if any(given.values()):
        credentials = Credentials(**{k: v or "" for k, v in given.items()})
    elif simulator is None or simulator is False:
        credentials = Credentials.from_env()
    if credentials is not None and simulator not in (None, False):
        raise ConfigurationError("simulator", "cannot be combined with real credentials")
    if credentials is None:
        if simulator is False:
            raise ConfigurationError(
                "credentials", "none given and no THINGSPACE_* variables set", "required when simulator=False"
            )
        from tskit.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME, Simulator, shared

        if simulator is None and (base_url or os.environ.get(BASE_URL_ENV)):
            raise ConfigurationError(
                "credentials",
                f"{'base_url' if base_url else BASE_URL_ENV} is set but no credentials are",
                "set the four THINGSPACE_* credential variables too, or leave the URL unset for the embedded simulator",
            )
        # a given one; True: a fresh one; None: the one every connection of this process shares
        sim = simulator if isinstance(simulator, Simulator) else Simulator() if simulator is True else shared()
        demo = Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, DEMO_PASSWORD)
        client = ThingSpaceClient(demo, base_url=SIMULATOR_URL, transport=sim.transport(), retry=retry, timeout=timeout)
        logger.info("no ThingSpace credentials set: using the embedded simulator")
        return ThingSpace(client, simulator=sim)
    client = ThingSpaceClient(credentials, base_url=base_url, retry=retry, timeout=timeout)
    return ThingSpace(client)
