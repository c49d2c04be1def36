"""X-Forwarded-For is believed only as deep as TRUSTED_PROXY_HOPS, and a bypassable proxy is named at start-up."""

from __future__ import annotations

import json

import pytest

from tests.test_auth import csrf_token_from

LIMIT = 5  # LOGIN_FAILURES_PER_USER: wrong passwords for one user from one address


def post_login(client, forwarded_for: str | None):
    # A wrong password (for nobody: it is counted all the same) from the address the service believes.
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    token = csrf_token_from(client.get("/login"))
    form = {"username": "sam", "password": "not-the-password", "csrf_token": token}
    return client.post("/login", data=form, headers=headers).status_code


def test_with_one_hop_the_limit_keys_on_the_address_the_proxy_appended(make_app, settings):
    client = make_app(settings, trusted_proxy_hops=1).test_client()
    # The proxy appends the real peer (5.6.7.8); what the client wrote on the left changes every time.
    statuses = [post_login(client, f"1.2.3.{n}, 5.6.7.8") for n in range(LIMIT + 1)]
    assert statuses == [200] * LIMIT + [429], "a forged leftmost entry does not dodge the limit"
    assert post_login(client, "5.6.7.8") == 429, "the same client without a forged entry"
    assert post_login(client, "1.2.3.0, 9.9.9.9") == 200, "another client, same forged entry, is not limited"


def test_a_port_the_proxy_writes_after_the_address_is_not_a_new_client(make_app, settings):
    # Some proxies append the peer with its port, a new one for each connection (auth/limit_store.client_key).
    client = make_app(settings, trusted_proxy_hops=1).test_client()
    statuses = [post_login(client, f"1.2.3.4, 5.6.7.8:{40000 + n}") for n in range(LIMIT + 1)]
    assert statuses == [200] * LIMIT + [429], "each connection's new port does not dodge the limit"
    assert post_login(client, "5.6.7.8") == 429, "the same client, written without a port"
    statuses = [post_login(client, f"[2001:db8:5:9::{n + 1}]:443") for n in range(LIMIT + 1)]
    assert statuses == [200] * LIMIT + [429], "an IPv6 client, by its /64, with a port"


def test_with_two_hops_the_second_entry_from_the_right_is_the_client(make_app, settings):
    client = make_app(settings, trusted_proxy_hops=2).test_client()
    statuses = [post_login(client, f"6.6.6.{n}, 1.2.3.4, 5.6.7.8") for n in range(LIMIT + 1)]
    assert statuses == [200] * LIMIT + [429]
    assert post_login(client, "1.2.3.5, 5.6.7.8") == 200, "another client behind the same outer proxy"


def test_without_trusted_hops_x_forwarded_for_is_ignored(make_app, settings):
    client = make_app(settings, trusted_proxy_hops=0).test_client()
    statuses = [post_login(client, f"10.0.0.{n}") for n in range(LIMIT + 1)]
    assert statuses == [200] * LIMIT + [429], "the peer's own address counts, whatever the header says"


def _bypass_warnings(capfd) -> list[dict]:
    out, err = capfd.readouterr()
    lines = [json.loads(line) for line in (out + err).splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "proxy_can_be_bypassed"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "switchboard.internal"])
def test_trusted_hops_on_an_address_others_reach_is_named_at_start_up(make_app, settings, capfd, host):
    capfd.readouterr()
    make_app(settings, trusted_proxy_hops=1, host=host)
    warned = _bypass_warnings(capfd)
    assert len(warned) == 1
    assert warned[0]["level"] == "warning" and warned[0]["host"] == host and warned[0]["trusted_proxy_hops"] == 1
    assert "forge" in warned[0]["risk"]
    assert "127.0.0.1" in warned[0]["advice"] and "firewall" in warned[0]["advice"]


@pytest.mark.parametrize("host, hops", [("127.0.0.1", 1), ("127.0.0.2", 2), ("::1", 1), ("localhost", 1),
                                        ("0.0.0.0", 0)])
def test_no_warning_on_loopback_or_without_trusted_hops(make_app, settings, capfd, host, hops):
    capfd.readouterr()
    make_app(settings, trusted_proxy_hops=hops, host=host)
    assert _bypass_warnings(capfd) == []
