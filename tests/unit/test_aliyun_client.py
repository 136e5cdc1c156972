"""The aliyun client's own duties: which errors it retries, its token bucket, credentials."""
from __future__ import annotations

import asyncio

import pytest

from operators.providers.aliyun import client as client_mod
from operators.providers.aliyun.client import AliyunClient, AliyunError, Credentials, TokenBucket, is_retryable
from operators.providers.aliyun.factory import read_credentials
from operators.providers.errors import ProviderError


class Describe:  # stands for an SDK request class: only its name is used
    pass


DescribeRequest = type("DescribeContainerGroupsRequest", (Describe,), {})
CreateRequest = type("CreateContainerGroupRequest", (Describe,), {})


@pytest.mark.parametrize("code,status,expected", [
    ("Throttling.User", 400, True), ("Throttling", 400, True), ("ServiceUnavailable", 503, True),
    ("InternalError", 500, True), ("OperationFailed.TokenIsProcessing", 400, True),
    ("SDK.HttpError", None, True), ("Whatever", 502, True),
    ("InvalidParameter", 400, False), ("QuotaExceeded.Cpu", 403, False), ("SignatureDoesNotMatch", 400, False),
])
def test_which_errors_are_transient(code, status, expected):
    assert is_retryable(code, status) is expected


def client_with(answers, attempts=5):
    c = AliyunClient(Credentials("ak", "sk"), "cn-hangzhou", endpoint="127.0.0.1:1", attempts=attempts)
    sent = []

    def send(request_cls, params):
        sent.append(request_cls.__name__)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer
    c._send = send
    return c, sent


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(client_mod, "backoff", lambda attempt, **_: 0.0)


async def test_throttling_is_retried_until_an_answer():
    throttled = AliyunError("DescribeContainerGroups", "Throttling.User", "Request was denied", http_status=400)
    c, sent = client_with([throttled, throttled, {"ok": 1}])
    assert await c.call(DescribeRequest, {}) == {"ok": 1}
    assert len(sent) == 3


async def test_a_final_error_is_not_retried():
    quota = AliyunError("CreateContainerGroup", "QuotaExceeded.Cpu", "no more cpu", http_status=403)
    c, sent = client_with([quota, {"ok": 1}])
    with pytest.raises(AliyunError) as err:
        await c.call(CreateRequest, {})
    assert len(sent) == 1 and err.value.code == "QuotaExceeded.Cpu"
    assert "QuotaExceeded.Cpu: no more cpu" in str(err.value) and err.value.reason == "QuotaExceeded"


async def test_a_lost_answer_is_not_resent_for_a_call_that_is_not_idempotent():
    lost = AliyunError("CreateContainerGroup", "SDK.HttpError", "connection reset")
    c, sent = client_with([lost, {"ok": 1}])
    with pytest.raises(AliyunError):
        await c.call(CreateRequest, {}, idempotent=False)
    assert len(sent) == 1
    c, sent = client_with([lost, {"ok": 1}])
    assert await c.call(CreateRequest, {}) == {"ok": 1}  # with a ClientToken: resent


async def test_retries_stop_after_the_last_attempt():
    busy = AliyunError("DescribeContainerGroups", "ServiceUnavailable", "busy", http_status=503)
    c, sent = client_with([busy] * 3, attempts=3)
    with pytest.raises(AliyunError):
        await c.call(DescribeRequest, {})
    assert len(sent) == 3


async def test_the_token_bucket_spaces_calls_beyond_its_burst():
    now = [0.0]
    bucket = TokenBucket(rate=10.0, burst=2, clock=lambda: now[0])
    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)
        now[0] += seconds
    real_sleep = asyncio.sleep
    asyncio.sleep = fake_sleep
    try:
        for _ in range(4):
            await bucket.acquire()
    finally:
        asyncio.sleep = real_sleep
    assert slept == pytest.approx([0.1, 0.1])  # two at once, then one each 1/rate
    assert now[0] == pytest.approx(0.2)


def test_credentials_never_show_their_secret():
    creds = Credentials("LTAI5tExampleKeyId", "verysecretvalue")
    assert "verysecretvalue" not in repr(creds) and "verysecretvalue" not in str(creds)


def test_credentials_come_from_a_secrets_files(tmp_path):
    (tmp_path / "access-key-id").write_text("LTAIabc\n")
    (tmp_path / "access-key-secret").write_text("s3cret\n")
    assert read_credentials(str(tmp_path)) == Credentials("LTAIabc", "s3cret")
    (tmp_path / "access-key-secret").write_text("")
    with pytest.raises(ProviderError, match="access-key-secret is empty"):
        read_credentials(str(tmp_path))
    with pytest.raises(ProviderError, match="names no directory"):
        read_credentials(None)
