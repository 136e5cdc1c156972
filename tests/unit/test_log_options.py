"""`kubectl logs` options: the kubelet API's query -> ContainerLogOpts (refusing bad values
with the option named), and the local provider's `podman logs` arguments and byte limit."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from operators.providers.local.streams import logs_args
from operators.providers.logopts import ContainerLogOpts, truncated
from operators.virtualnode.kubelet.logquery import LogQueryError, log_options

UTC = dt.timezone.utc


def test_every_option_of_the_query_is_read():
    opts = log_options({"follow": "true", "tailLines": "10", "previous": "1", "timestamps": "true",
                        "sinceSeconds": "30", "limitBytes": "512"})
    assert opts == ContainerLogOpts(follow=True, tail=10, previous=True, timestamps=True, since_seconds=30,
                                    limit_bytes=512)
    assert log_options({}) == ContainerLogOpts()
    assert log_options({"follow": "false", "timestamps": "", "tailLines": ""}) == ContainerLogOpts()
    # As the apiserver writes sinceTime (RFC 3339), and with fractions and offsets.
    assert log_options({"sinceTime": "2026-11-29T21:28:49Z"}).since_time == dt.datetime(2026, 11, 29, 21, 28, 49,
                                                                                         tzinfo=UTC)
    since = log_options({"sinceTime": "2026-11-29T23:28:49.5+02:00"}).since_time
    assert since == dt.datetime(2026, 11, 29, 21, 28, 49, 500000, tzinfo=UTC)
    assert log_options({"tailLines": "0"}).tail == 0


@pytest.mark.parametrize("query, named", [
    ({"timestamps": "yes please"}, "timestamps"),
    ({"follow": "2"}, "follow"),
    ({"previous": "on"}, "previous"),
    ({"tailLines": "-1"}, "tailLines"),
    ({"tailLines": "ten"}, "tailLines"),
    ({"limitBytes": "0"}, "limitBytes"),
    ({"limitBytes": "1.5"}, "limitBytes"),
    ({"sinceSeconds": "0"}, "sinceSeconds"),
    ({"sinceSeconds": "1m"}, "sinceSeconds"),
    ({"sinceTime": "2026-11-29"}, "sinceTime"),              # a date is not a time
    ({"sinceTime": "2026-11-29T21:28:49"}, "sinceTime"),     # no time zone
    ({"sinceTime": "last tuesday"}, "sinceTime"),
    ({"sinceTime": "2026-11-29T21:28:49Z", "sinceSeconds": "5"}, "at most one of sinceTime or sinceSeconds"),
])
def test_a_bad_value_is_refused_with_the_option_named(query, named):
    with pytest.raises(LogQueryError, match=named):
        log_options(query)


def test_podman_logs_arguments_carry_every_option():
    assert logs_args("sk8s-u-c", ContainerLogOpts()) == ["logs", "--", "sk8s-u-c"]
    assert logs_args("sk8s-u-c", ContainerLogOpts(follow=True, tail=0, timestamps=True, since_seconds=5)) == [
        "logs", "--follow", "--tail=0", "--timestamps", "--since=5s", "--", "sk8s-u-c"]
    since = dt.datetime(2026, 11, 29, 23, 28, 49, 500000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert logs_args("-x", ContainerLogOpts(since_time=since)) == [
        "logs", "--since=2026-11-29T21:28:49.500000Z", "--", "-x"]  # UTC; the name stays data after --


def test_the_byte_limit_cuts_the_stream_and_closes_its_source():
    closed = []

    async def source():
        try:
            for chunk in (b"abc", b"defg", b"hij"):
                yield chunk
        finally:
            closed.append(True)

    async def collect(limit):
        return [c async for c in truncated(source(), limit)]
    assert asyncio.run(collect(5)) == [b"abc", b"de"] and closed == [True]
    assert asyncio.run(collect(3)) == [b"abc"]
    assert asyncio.run(collect(None)) == [b"abc", b"defg", b"hij"]
