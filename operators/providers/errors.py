"""Errors of provider calls, shared by sandboxes, load balancers and private zones: the
`reason` becomes the status reason (and the Event's), `retryable` tells the operator
whether to try again."""
from __future__ import annotations

from ..models.contracts import REASON_ERR_IMAGE_PULL


class ProviderError(Exception):
    """A provider call failed; `reason` becomes the status reason."""

    reason = "ProviderError"
    retryable = True

    def __init__(self, message: str, *, reason: str | None = None, retryable: bool | None = None):
        super().__init__(message)
        if reason:
            self.reason = reason
        if retryable is not None:
            self.retryable = retryable


class ImagePullError(ProviderError):
    reason = REASON_ERR_IMAGE_PULL


class InvalidSpecError(ProviderError):
    reason = "InvalidSpec"
    retryable = False
