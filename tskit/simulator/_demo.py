"""The demo data every new simulator starts with: one application, one user, three accounts.

The addresses are documentation ones (example.com, 203.0.113.0/24): nothing is ever sent there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from tskit.simulator._core import Simulator

DEMO_CLIENT_ID: Final = "tskit-demo-client"
DEMO_CLIENT_SECRET: Final = "tskit-demo-secret"
DEMO_USERNAME: Final = "demo-user"
DEMO_PASSWORD: Final = "demo-password"

#: Account name -> its seeded registrations (service, url, username, password).
DEMO_ACCOUNTS: Final[dict[str, tuple[tuple[str, str, str, str], ...]]] = {
    "0000123456-00001": (
        ("CarrierService", "https://listener.example.com/thingspace/carrier", "tsuser", "demo-pass-1"),
        ("DeviceUsage", "https://listener.example.com/thingspace/usage", "", ""),
    ),
    "0000123456-00002": (
        ("CarrierService", "http://203.0.113.10:9001/callbacks", "ops", "demo-pass-2"),
        ("NiddService", "https://listener.example.com/thingspace/nidd", "nidd", "demo-pass-3"),
    ),
    "0000123456-00003": (),
}


#: The sandbox's accounts (the API console's simulator, and the examples of Verizon's pages).
SANDBOX_ACCOUNTS: Final[dict[str, tuple[tuple[str, str, str, str], ...]]] = {
    "TestAccount-1": (
        ("CarrierService", "http://10.120.102.147:50569/CallbackListener/Carrier.asmx", "", ""),
        ("DeviceUsage", "http://10.120.102.147:50569/CallbackListener/Usage.asmx", "zaffod", "drowssap"),
    ),
    "TestAccount-2": (),
    # the accounts of the list and deregister examples on Verizon's pages
    "0252012345-00001": (
        ("CarrierService", "http://10.120.102.147:50569/CallbackListener/Carrier.asmx", "", ""),
        ("DeviceUsage", "http://10.120.102.147:50569/CallbackListener/Usage.asmx", "zaffod", "drowssap"),
    ),
    "1223334444-00001": (("CarrierService", "http://10.120.102.147:50569/CallbackListener/Carrier.asmx", "", ""),),
}


def seed_sandbox(simulator: Simulator) -> None:
    """Add the sandbox's accounts and their registrations (any user may use them in sandbox mode)."""
    for account, registrations in SANDBOX_ACCOUNTS.items():
        simulator.add_account(account)
        for service, url, username, password in registrations:
            simulator.register(account, service, url, username, password)


def seed(simulator: Simulator) -> None:
    """Add the demo application, user, accounts and registrations to a simulator."""
    simulator.add_client(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    simulator.add_user(DEMO_USERNAME, DEMO_PASSWORD, accounts=DEMO_ACCOUNTS)
    for account, registrations in DEMO_ACCOUNTS.items():
        for service, url, username, password in registrations:
            simulator.register(account, service, url, username, password)


def demo_env(base_url: str) -> dict[str, str]:
    """The ``THINGSPACE_*`` variables that point a client at a simulator with the demo data."""
    return {
        "THINGSPACE_BASE_URL": base_url,
        "THINGSPACE_CLIENT_ID": DEMO_CLIENT_ID,
        "THINGSPACE_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "THINGSPACE_USERNAME": DEMO_USERNAME,
        "THINGSPACE_PASSWORD": DEMO_PASSWORD,
    }


def fleet_accounts(count: int) -> list[str]:
    """The names of a generated fleet of ``count`` accounts."""
    return [f"{7000000000 + i:010d}-00001" for i in range(count)]


def seed_fleet(simulator: Simulator, count: int) -> list[str]:
    """Add ``count`` accounts for the demo user, most healthy, some with the problems audits look for.

    The mix repeats every ten accounts: six healthy ones (CarrierService and DeviceUsage on HTTPS with
    credentials), then credentials over plain HTTP to a documentation address, a private address
    without credentials, one URL shared by two services, and an account with no listener at all.

    Returns:
        The new account names, in order.
    """
    names = fleet_accounts(count)
    simulator.add_client(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    simulator.add_user(DEMO_USERNAME, DEMO_PASSWORD, accounts=names)
    for i, name in enumerate(names):
        host = f"https://listener-{i}.example.com"
        kind = i % 10
        if kind < 6:
            simulator.register(name, "CarrierService", f"{host}/carrier", "ts", f"fleet-pw-{i}")
            simulator.register(name, "DeviceUsage", f"{host}/usage", "ts", f"fleet-pw-{i}")
        elif kind == 6:
            simulator.register(name, "CarrierService", f"http://203.0.113.{i % 250 + 1}:9001/cb", "ts", f"fleet-pw-{i}")
        elif kind == 7:
            simulator.register(name, "CarrierService", f"https://10.20.{i % 250}.7/cb")
        elif kind == 8:
            simulator.register(name, "CarrierService", f"{host}/all", "ts", f"fleet-pw-{i}")
            simulator.register(name, "DeviceUsage", f"{host}/all", "ts", f"fleet-pw-{i}")
    return names
