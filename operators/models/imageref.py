"""The image reference grammar: what a container's `image` may be.

The same grammar as github.com/distribution/reference (ReferenceRegexp), which the
kubelet's runtimes parse: `[domain[:port]/]path[:tag][@digest]`. An image is the one
tenant value that goes to the container CLI as a positional argument, so a value outside
the grammar (one starting with `-`, with spaces, newlines, `=`) is refused at admission,
in the SandboxPod schema and in the tenant compatibility policy (compatibility.yaml holds
the same expression; a unit test keeps the two equal).

Character classes are spelled out ASCII ranges rather than `\\w` and `[[:xdigit:]]`:
the pattern is evaluated by Go's RE2 (apiserver, CEL), by Rust's regex (pydantic) and by
Python's re (tests), and `\\w` is Unicode-aware in the latter two.
"""
from __future__ import annotations

_ALPHANUMERIC = "[a-z0-9]+"
_SEPARATOR = "(?:[._]|__|[-]+)"
_PATH_COMPONENT = f"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = f"{_DOMAIN_COMPONENT}(?:[.]{_DOMAIN_COMPONENT})*"
_IPV6 = "\\[(?:[a-fA-F0-9:]+)\\]"
_DOMAIN_AND_PORT = f"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_NAME = f"(?:{_DOMAIN_AND_PORT}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"

IMAGE_REFERENCE = f"^{_NAME}(?::{_TAG})?(?:@{_DIGEST})?$"

# What the tenant's own apiserver takes as an image (it only checks for surrounding
# whitespace) can be any length; references longer than this are not real ones.
MAX_IMAGE_LENGTH = 4096
