"""The lines of /etc/hosts the kubelet adds to a pod's (pure): its domain, its hostAliases.

The kubelet's managedHostsFileContent (pkg/kubelet/kubelet_pods.go) maps the pod's IP to
`<hostname>.<subdomain>.<ns>.svc.<cluster domain>` and `<hostname>` when spec.subdomain is
set, and ends the file with hostAliases, one line per address with its names separated
by tabs, under "# Entries added by HostAliases." (hostsEntriesFromHostAliases). podman
writes the pod's hosts file itself (localhost, `<ip> <hostname> <infra>`) and keeps
editing it as containers come and go, leaving other lines alone; the provider adds the
domain line before podman's line for the same address, so that the fully-qualified name
is the canonical one (`hostname -f`), and the hostAliases block at the end, once the pod
has its address and before any container of the pod runs. (podman's own `--add-host`
writes one line per name, which is not the kubelet's file.)
"""
from __future__ import annotations

import ipaddress
import re

from ...models.contracts import REASON_CONFIG_ERROR
from ..errors import InvalidSpecError

_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"  # 63 characters at most
_HOSTNAME = re.compile(_LABEL)
_DOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
ALIASES_HEADER = "# Entries added by HostAliases."


def domain_line(ip: str, hostname: str, domain: str) -> str:
    """`<ip>\\t<hostname>.<domain>\\t<hostname>`: every part checked, since it becomes a
    line of a file (a newline or space in it would add names or lines)."""
    try:
        ip = str(ipaddress.ip_address(ip))
    except ValueError:
        raise InvalidSpecError(f"the pod has no usable IP address for /etc/hosts ({ip!r})",
                               reason=REASON_CONFIG_ERROR) from None
    if not _HOSTNAME.fullmatch(hostname):
        raise InvalidSpecError(f"spec.hostname: Invalid value: {hostname!r}: not a DNS-1123 label",
                               reason=REASON_CONFIG_ERROR)
    fqdn = f"{hostname}.{domain}"
    if not (_DOMAIN.fullmatch(domain) and len(fqdn) <= 253):
        raise InvalidSpecError(f"spec.hostDomain: Invalid value: {domain!r}: not a DNS-1123 subdomain "
                               "(of at most 253 characters with the hostname)", reason=REASON_CONFIG_ERROR)
    return f"{ip}\t{fqdn}\t{hostname}"


def with_domain_line(content: str, line: str) -> str:
    """`content` with `line` before the first line for the same address (or at the end);
    unchanged when it is there already (a provider restart writes it again)."""
    lines = content.splitlines()
    if line in lines:
        return content
    ip = line.split("\t", 1)[0]
    at = next((i for i, ln in enumerate(lines) if ln.split(None, 1)[:1] == [ip]), len(lines))
    lines.insert(at, line)
    return "\n".join(lines) + "\n"


def alias_lines(aliases) -> list[str]:
    """spec.hostAliases as the kubelet writes them: `<ip>\t<name>\t<name>...`, each value
    checked, since it becomes a line of a file (a newline or space in it would add names
    or lines). Empty when there are none."""
    lines = []
    for i, alias in enumerate(aliases or []):
        try:
            ip = str(ipaddress.ip_address(alias.ip))
        except ValueError:
            raise InvalidSpecError(f"spec.hostAliases[{i}].ip: Invalid value: {alias.ip!r}: not an IP address",
                                   reason=REASON_CONFIG_ERROR) from None
        for j, name in enumerate(alias.hostnames or []):
            if not (_DOMAIN.fullmatch(name) and len(name) <= 253):
                raise InvalidSpecError(f"spec.hostAliases[{i}].hostnames[{j}]: Invalid value: {name!r}: "
                                       "not a DNS-1123 subdomain", reason=REASON_CONFIG_ERROR)
        lines.append(f"{ip}\t" + "\t".join(alias.hostnames or []))  # "ip\t" with no names, as the kubelet's
    return [ALIASES_HEADER, *lines] if lines else []


def with_alias_lines(content: str, lines: list[str]) -> str:
    """`content` ending with the hostAliases block after a blank line, as the kubelet's;
    unchanged when the block is there already (a provider restart writes it again)."""
    if not lines or ALIASES_HEADER in content.splitlines():
        return content
    body = content if content.endswith("\n") or not content else content + "\n"
    return body + "\n" + "\n".join(lines) + "\n"
