"""The kernel data path's rulesets: listener + backends -> nft text (lbrules.py)."""
from __future__ import annotations

import pytest

from operators.providers.local import lbrules, nft
from operators.providers.local.lbrules import Route


def test_round_robin_over_each_listeners_backends_after_a_whole_table_replace():
    text = lbrules.ruleset("sk8s-lb-h-o-uid1", "127.70.0.3", "output",
                           [Route("TCP", 80, (("10.112.0.5", 8080), ("10.112.0.6", 8080))),
                            Route("UDP", 53, (("10.112.0.5", 5353),))])
    # replaced whole, in the one transaction (the add makes the delete valid when absent)
    assert text.startswith("add table ip sk8s-lb-h-o-uid1\ndelete table ip sk8s-lb-h-o-uid1\n"
                           "table ip sk8s-lb-h-o-uid1 {\n")
    assert "type nat hook output priority -100; policy accept;" in text
    assert ("ip daddr 127.70.0.3 meta l4proto . th dport vmap "
            "{ tcp . 80 : goto l-tcp-80, udp . 53 : goto l-udp-53 }") in text
    assert "numgen inc mod 2 vmap { 0 : goto b-tcp-80-0, 1 : goto b-tcp-80-1 }" in text
    assert "meta l4proto tcp dnat to 10.112.0.5:8080" in text
    assert "meta l4proto tcp dnat to 10.112.0.6:8080" in text
    assert "meta l4proto udp dnat to 10.112.0.5:5353" in text
    assert "ct status dnat ct original ip daddr 127.70.0.3 masquerade" in text
    assert "@a-" not in text  # no affinity asked: no sets


def test_intranet_hooks_prerouting_and_affinity_keeps_a_client_on_its_backend():
    text = lbrules.ruleset("t", "10.112.1.7", "prerouting",
                           [Route("TCP", 80, (("10.112.0.5", 80), ("10.112.0.6", 80)))], affinity_seconds=600)
    assert "type nat hook prerouting priority -100;" in text
    assert text.count("flags dynamic,timeout") == 2 and "timeout 600s" in text
    assert "ip saddr @a-tcp-80-1 goto b-tcp-80-1" in text
    assert "update @a-tcp-80-1 { ip saddr }\n    meta l4proto tcp dnat to 10.112.0.6:80" in text


def test_a_listener_without_backends_is_left_to_the_stack_that_refuses_it():
    text = lbrules.ruleset("t", "10.112.1.7", "prerouting", [Route("TCP", 80, ()), Route("TCP", 81, (("10.112.0.5", 81),))])
    assert "tcp . 80" not in text and "l-tcp-80" not in text
    assert "{ tcp . 81 : goto l-tcp-81 }" in text
    empty = lbrules.ruleset("t", "10.112.1.7", "prerouting", [Route("TCP", 80, ())])
    assert "vmap" not in empty and "dnat to" not in empty


@pytest.mark.parametrize("bad", ["10.0.0.1; flush ruleset", "10.0.0.1:80", "::1", "example.com", "10.0.0.256", ""])
def test_backend_addresses_are_parsed_before_they_reach_a_ruleset(bad):
    with pytest.raises(ValueError):
        lbrules.ruleset("t", "127.70.0.3", "output", [Route("TCP", 80, ((bad, 80),))])


@pytest.mark.parametrize("route", [Route("TCP", 0, (("10.0.0.1", 80),)), Route("TCP", 80, (("10.0.0.1", 70000),)),
                                   Route("SCTP", 80, (("10.0.0.1", 80),)), Route("TCP", True, (("10.0.0.1", 80),))])
def test_ports_and_protocols_are_checked(route):
    with pytest.raises(ValueError):
        lbrules.ruleset("t", "127.70.0.3", "output", [route])


def test_names_hooks_and_addresses_are_checked():
    for args in (("t x", "127.70.0.3", "output"), ("t", "127.70.0.3; drop", "output"), ("t", "127.70.0.3", "input")):
        with pytest.raises(ValueError):
            lbrules.ruleset(*args, [])
    with pytest.raises(ValueError):
        lbrules.table_name("sk8s-lb-h-o-", "../x")
    with pytest.raises(ValueError):
        lbrules.ruleset("t", "127.70.0.3", "output", [], affinity_seconds=0)


def test_tables_of_one_owner_are_found_in_a_listing():
    listing = ("table ip sk8s-lb-h-o-a\ntable inet other\ntable ip sk8s-lb-h-p-b\n"
               "table ip sk8s-lb-h-o-c\ntable ip6 sk8s-lb-h-o-d\n")
    assert lbrules.tables_in(listing, "sk8s-lb-h-o-") == ["sk8s-lb-h-o-a", "sk8s-lb-h-o-c"]


def test_the_guard_and_the_anchor_table_restrict_what_the_two_sysctls_open():
    assert 'iif != "lo" ip daddr 127.0.0.0/8 drop' in nft.guard_script()
    assert "priority raw" in nft.guard_script()  # before NAT turns a reply's gateway address into 127.0.0.1
    anchor = nft.anchor_script()
    assert "policy drop;" in anchor and "ct status dnat accept" in anchor
