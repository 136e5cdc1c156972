"""The emulator's RPC signature v1 against the SDK's own signer, its refusals with the
cloud's codes, and the flat parameters read back into structures."""
from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from aliyunsdkcore.auth.algorithm import sha_hmac1
from aliyunsdkcore.auth.composer import rpc_signature_composer as composer

from operators.emulator.alibaba import params as p
from operators.emulator.alibaba.errors import ApiError
from operators.emulator.alibaba.signature import Verifier, format_time, parse_time, sign, string_to_sign

TRICKY = {"Action": "CreateContainerGroup", "Version": "2018-08-08", "RegionId": "cn-hangzhou",
          "Container.1.Command.1": "sh -c 'echo a*b ~ /x+y=z&w'", "Tag.1.Value": "ünïcode 日本",
          "Container.1.EnvironmentVar.1.Value": "%20 already-encoded?"}


def sdk_signed(method: str, params: dict, secret: str, body: dict | None = None) -> tuple[dict, str]:
    """The parameters the SDK sends (its common ones added) and its string to sign."""
    url, to_sign = composer.get_signed_url(dict(params), "AK", secret, "JSON", method, body or {})
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True)), to_sign


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_signature_matches_the_sdk_signer(method):
    sent, sdk_string = sdk_signed(method, TRICKY, "s3cr3t")
    unsigned = {k: v for k, v in sent.items() if k != "Signature"}
    assert string_to_sign(method, unsigned) == sdk_string
    assert sign(method, unsigned, "s3cr3t") == sent["Signature"]
    assert sent["Signature"] == sha_hmac1.get_sign_string(sdk_string, "s3cr3t&")


def test_signature_known_answer():
    # Fixed parameters; the value computed by the SDK's composer and HMAC module (pinned).
    fixed = {**TRICKY, "AccessKeyId": "AK", "Format": "JSON", "SignatureMethod": "HMAC-SHA1",
             "SignatureVersion": "1.0", "SignatureType": "", "SignatureNonce": "n-1",
             "Timestamp": "2026-01-02T03:04:05Z"}
    sdk_string = getattr(composer, "__compose_string_to_sign")("GET", fixed)  # the SDK's private composer
    assert string_to_sign("GET", fixed) == sdk_string
    expected = sha_hmac1.get_sign_string(sdk_string, "key&")
    assert sign("GET", fixed, "key") == expected == "AGp0DmojLX7C8ffsxiXJGgHXHhg="


def test_body_parameters_are_signed_too():
    sent, _ = sdk_signed("POST", {"Action": "X"}, "s", body={"BackendServers": '[{"ServerId":"eci-1"}]'})
    verifier = Verifier({"AK": "s"}, clock=lambda: parse_time(sent["Timestamp"]))
    assert verifier.verify("POST", {**sent, "BackendServers": '[{"ServerId":"eci-1"}]'}) == "AK"
    with pytest.raises(ApiError) as e:
        Verifier({"AK": "s"}, clock=lambda: parse_time(sent["Timestamp"])).verify("POST", sent)
    assert e.value.code == "SignatureDoesNotMatch"


def _verify(params: dict, credentials=None, skew: float = 0.0, verifier: Verifier | None = None) -> str:
    v = verifier or Verifier(credentials or {"AK": "s"}, clock=lambda: parse_time(params["Timestamp"]) + skew)
    return v.verify("GET", params)


def test_refusals_carry_the_clouds_codes():
    sent, to_sign = sdk_signed("GET", {"Action": "DescribeContainerGroups"}, "s")
    assert _verify(sent) == "AK"
    cases = [
        (dict(sent), {"OTHER": "s"}, 0, 404, "InvalidAccessKeyId.NotFound"),
        (dict(sent), None, 16 * 60, 400, "InvalidTimeStamp.Expired"),
        (dict(sent), None, -16 * 60, 400, "InvalidTimeStamp.Expired"),
        ({**sent, "Action": "DeleteContainerGroup"}, None, 0, 400, "SignatureDoesNotMatch"),
        (dict(sent), {"AK": "other-secret"}, 0, 400, "SignatureDoesNotMatch"),
    ]
    for params, creds, skew, status, code in cases:
        with pytest.raises(ApiError) as e:
            _verify(params, creds, skew)
        assert (e.value.status, e.value.code) == (status, code)
    with pytest.raises(ApiError) as e:
        Verifier({"AK": "s"}).verify("GET", {k: v for k, v in sent.items() if k != "Timestamp"})
    assert e.value.code == "InvalidTimeStamp.Expired"


def test_signature_mismatch_message_carries_the_servers_string_to_sign():
    # The SDK splits the message at ':' and compares with its own string to sign.
    sent, to_sign = sdk_signed("GET", {"Action": "DescribeContainerGroups"}, "s")
    with pytest.raises(ApiError) as e:
        _verify(sent, {"AK": "wrong"})
    assert e.value.message.split(":")[1] == to_sign


def test_a_nonce_is_used_once_within_fifteen_minutes():
    sent, _ = sdk_signed("GET", {"Action": "DescribeContainerGroups"}, "s")
    now = [parse_time(sent["Timestamp"])]
    verifier = Verifier({"AK": "s"}, clock=lambda: now[0])
    assert verifier.verify("GET", sent) == "AK"
    with pytest.raises(ApiError) as e:
        verifier.verify("GET", sent)
    assert e.value.code == "SignatureNonceUsed"
    # A bad signature does not burn a nonce: only a verified request records it.
    fresh, _ = sdk_signed("GET", {"Action": "DescribeContainerGroups"}, "s")
    with pytest.raises(ApiError):
        verifier.verify("GET", {**fresh, "Signature": "AAAA"})
    assert verifier.verify("GET", fresh) == "AK"
    assert format_time(parse_time("2018-08-02T15:00:00Z")) == "2018-08-02T15:00:00Z"


def test_unflatten_builds_lists_from_one_based_indices():
    flat = {"Container.1.Name": "a", "Container.2.Name": "b", "Container.1.EnvironmentVar.2.Key": "K2",
            "Container.1.EnvironmentVar.1.Key": "K1", "Container.1.Command.1": "sh",
            "DnsConfig.NameServer.1": "10.0.0.10", "Tag.1.Key": "k", "Tag.1.Value": "v", "Cpu": "1.0",
            "Container.10.Name": "j"}
    assert p.unflatten(flat) == {
        "Container": [{"Name": "a", "EnvironmentVar": [{"Key": "K1"}, {"Key": "K2"}], "Command": ["sh"]},
                      {"Name": "b"}, {"Name": "j"}],
        "DnsConfig": {"NameServer": ["10.0.0.10"]}, "Tag": [{"Key": "k", "Value": "v"}], "Cpu": "1.0"}


@pytest.mark.parametrize("flat", [
    {"Container.1.Name": "a", "Container.Name": "b"},   # a list and a structure at once
    {"Container": "x", "Container.1.Name": "a"},        # a value and a structure at once
    {"Container.0.Name": "a"},                          # indices start at 1
    {"Container.1001.Name": "a"},                       # bounded
    {"Container..Name": "a"},
])
def test_unflatten_refuses_contradictions(flat):
    with pytest.raises(ApiError) as e:
        p.unflatten(flat)
    assert e.value.code == "InvalidParameter"


def test_json_array_parameters():
    assert p.json_list({"ContainerGroupIds": '["eci-1","eci-2"]'}, "ContainerGroupIds") == ["eci-1", "eci-2"]
    assert p.json_list({}, "ContainerGroupIds") is None
    for bad in ('{"a":1}', "[1]", "eci-1", "[" + ",".join('"x"' for _ in range(21)) + "]"):
        with pytest.raises(ApiError):
            p.json_list({"ContainerGroupIds": bad}, "ContainerGroupIds", limit=20)
    # What the SDK's request classes send for unset and boolean values.
    assert p.boolean({"ReadOnly": "True"}, "ReadOnly") is True
    assert p.boolean({"ReadOnly": "None"}, "ReadOnly") is False
    assert p.text({"Protocol": "None"}, "Protocol") is None
