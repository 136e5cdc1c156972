"""The cloud's error answer: an HTTP status and a JSON body
{"RequestId", "HostId", "Code", "Message", "Recommend"}, as the RPC gateway sends it."""
from __future__ import annotations

RECOMMEND = "https://api.aliyun.com/troubleshoot?q={code}&product={product}"


class ApiError(Exception):
    """A request the cloud refuses: raised anywhere below the server, rendered by it."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def missing(name: str) -> ApiError:
    return ApiError(400, "MissingParameter",
                    f'The input parameter "{name}" that is mandatory for processing this request is not supplied.')


def invalid(name: str, why: str = "") -> ApiError:
    return ApiError(400, "InvalidParameter",
                    f"The specified parameter {name} is not valid." + (f" {why}" if why else ""))


def body(error: ApiError, request_id: str, host_id: str, product: str = "") -> dict:
    return {"RequestId": request_id, "HostId": host_id, "Code": error.code, "Message": error.message,
            "Recommend": RECOMMEND.format(code=error.code, product=product)}
