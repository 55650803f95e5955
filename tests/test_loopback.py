"""One loopback rule: the host checks of the config, the transport, rotations and the listener agree."""

from __future__ import annotations

import httpx2
import pytest

from tskit._addresses import is_loopback_host
from tskit._config import base_url
from tskit._errors import ConfigurationError
from tskit._transport import make_client
from tskit.state._rotate import _clear_text

LOOPBACK = [
    "localhost",
    "LOCALHOST",
    "localhost.",
    "app.localhost",
    "a.b.localhost",
    "127.0.0.1",
    "127.255.0.9",
    "::1",
    "[::1]",
    "::1%lo",
    "::ffff:127.0.0.1",
    "0:0:0:0:0:0:0:1",
]
NOT_LOOPBACK = [
    "",
    " ",
    ".localhost",
    "localhost.example.com",
    "notlocalhost",
    "127.0.0.1.nip.io",
    "127.1",
    "0.0.0.0",
    "::",
    "::ffff:10.0.0.1",
    "10.0.0.1",
    "192.168.1.5",
    "example.com",
    "localhost..",
]


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_hosts_that_are_not_loopback(host: str) -> None:
    assert not is_loopback_host(host)


URLS = {
    "http://app.localhost:8080": True,
    "http://localhost:8080": True,
    "http://127.0.0.1:9100": True,
    "http://[::1]:9100": True,
    "http://[::ffff:127.0.0.1]:9100": True,
    "http://localhost.example.com:8080": False,
    "http://10.0.0.1:8080": False,
}


@pytest.mark.parametrize(("url", "loopback"), URLS.items())
def test_the_config_the_transport_and_rotations_agree(url: str, loopback: bool) -> None:
    # the base URL: plain http is accepted only on loopback
    if loopback:
        assert base_url(url, environ={}) == url
    else:
        with pytest.raises(ConfigurationError) as refused:
            base_url(url, environ={})
        assert refused.value.field == "base_url"
    # the transport: a loopback base URL never goes through the environment's proxies
    client = make_client(url, auth=httpx2.Auth(), transport=None, timeout=5.0, limits=httpx2.Limits(), headers={})
    assert client.trust_env is not loopback
    # a rotation: a password sent in clear text to loopback never crosses a network
    assert _clear_text(url + "/hook") is not loopback
