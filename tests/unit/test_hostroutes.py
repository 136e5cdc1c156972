import pytest

from operators.embedded.hostroutes import reject_route_args


def test_reject_route_is_a_local_prohibit_route():
    assert reject_route_args("10.96.0.0/16") == ["ip", "-4", "route", "replace", "prohibit", "10.96.0.0/16",
                                                 "proto", "static"]
    assert reject_route_args("fd00::/64")[:2] == ["ip", "-6"]


def test_a_range_with_host_bits_is_refused():
    with pytest.raises(ValueError):
        reject_route_args("10.96.0.1/16")
