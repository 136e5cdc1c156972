"""Tenant values reach podman as data, never as options (pure builders, parsed back the
way podman's flag parser (pflag, interspersed=false) reads a command line)."""
import itertools
import json
import random
import re

import pytest

from operators.models.imageref import IMAGE_REFERENCE
from operators.models.podspec import HostAlias, PodDNSConfig, PodDNSConfigOption, PodSpec
from operators.providers.errors import InvalidSpecError
from operators.providers.sandbox import SandboxRef
from operators.providers.local import execlimits
from operators.providers.local.podenv import pod_create_args
from operators.providers.local.hostsfile import alias_lines, with_alias_lines
from operators.providers.local.spec import dns_args, run_args
from operators.providers.local.stdio import attach_args, exec_args

REF = SandboxRef("ns1", "web", "1234-abcd")
HOSTILE = ["--privileged", "--volume=/:/host", "-v/etc:/x", "-it", "--", "-", "a=b", "--env=X=1",
           "line1\nline2", "--net=host\n--pid=host", " --cap-add=ALL", "$(touch /tmp/x)", "'; rm -rf /", "=",
           "--entrypoint=[\"/bin/sh\"]", "\t", "ünïcode --x", "a,b", "--security-opt=seccomp=unconfined"]
# The options our builders may put before `--`; anything else there is a value that became an option.
VALUE_OPTIONS = {"name", "pod", "network", "hostname", "label", "restart", "stop-timeout", "pull", "log-driver",
                 "memory", "cpus", "cpu-shares", "env", "volume", "workdir", "entrypoint", "dns", "dns-search",
                 "dns-option", "add-host", "detach-keys", "sig-proxy", "tail", "user", "group-add", "cap-add",
                 "cap-drop", "security-opt", "read-only", "sysctl", "tmpfs", "mount", "ulimit", "umask", "userns",
                 "pids-limit", "storage-opt", "stop-signal", "shm-size", "device", "systemd", "passwd-entry"}
FLAGS = {"detach", "init", "tty", "interactive", "no-stdin", "read-only", "no-new-privileges", "follow"}


def parse(argv: list[str]) -> tuple[list[tuple[str, str | None]], list[str]]:
    """(options, positional arguments) as pflag with interspersed=false parses them: options
    end at `--` or at the first positional argument; `--name=value` is one option, `--name`
    alone a flag (all options we use with a value use the `=` form), `-x` a short flag."""
    options, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return options, argv[i + 1:]
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            options.append((name, value if eq else None))
        elif a.startswith("-") and a != "-":
            options.append((a, None))  # a short flag: never ours
        else:
            return options, argv[i:]
        i += 1
    return options, []


def check_options(options):
    for name, value in options:
        assert (name in FLAGS and value is None) or (name in VALUE_OPTIONS and value is not None), \
            f"unexpected option {name!r}={value!r}: a user value parsed as an option"


def pod(container: dict, **spec) -> PodSpec:
    return PodSpec.model_validate({"containers": [{"name": "c", "image": "localhost/img:1", **container}],
                                   "terminationGracePeriodSeconds": 3, **spec})


def run(s: PodSpec, new_pod: bool = True) -> list[str]:
    return run_args(REF, s, s.containers[0], network="n", labels={"l": "v"}, new_pod=new_pod,
                    dns=dns_args(s, "10.0.0.2"))


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_stay_data_in_every_field(value):
    env = [{"name": "V", "value": value}, {"name": "W", "value": f"x={value}"}]
    s = pod({"command": [value, "sh"], "args": [value, "x", value], "env": env, "workingDir": f"/w/{value}"})
    for new_pod in (True, False):
        argv = run(s, new_pod)
        assert argv[0] == "run"
        options, positional = parse(argv[1:])
        check_options(options)
        assert positional == ["localhost/img:1", value, "x", value]  # args exactly, after the image
        values = dict((n, v) for n, v in options if n not in ("env", "label"))
        assert json.loads(values["entrypoint"]) == [value, "sh"]
        assert values["workdir"] == f"/w/{value}"
        assert [v for n, v in options if n == "env"] == [f"V={value}", f"W=x={value}"]
        assert argv.index("--") == len(argv) - 5  # the terminator, right before the image


def test_random_combinations_keep_every_value_in_its_place():
    rng = random.Random(9)
    for _ in range(300):
        picks = [rng.choice(HOSTILE) for _ in range(5)]
        s = pod({"command": picks[:rng.randint(1, 3)], "args": picks[rng.randint(0, 4):],
                 "env": [{"name": f"E{i}", "value": v} for i, v in enumerate(picks)]})
        options, positional = parse(run(s)[1:])
        check_options(options)
        assert positional == ["localhost/img:1", *s.containers[0].args]
        assert json.loads(dict(options)["entrypoint"]) == s.containers[0].command
        assert [v.split("=", 1)[1] for n, v in options if n == "env"] == picks


@pytest.mark.parametrize("image", ["--privileged", "--volume=/:/host", "-v/etc:/x", "busybox --privileged",
                                   "busy box", "busybox\n", "busybox\n--privileged", "a=b", "-", "--", "",
                                   "busybox:--tag", "BusyBox", "busybox@sha256:abc", "https://x/y", "x//y",
                                   "x/:tag", " busybox"])
def test_image_outside_the_reference_grammar_is_refused(image):
    assert not re.fullmatch(IMAGE_REFERENCE, image)
    with pytest.raises(ValueError):
        pod({"image": image})


@pytest.mark.parametrize("image", ["busybox", "busybox:1.36", "library/busybox", "docker.io/library/busybox:latest",
                                   "localhost/sk8s-busybox:latest", "localhost:5000/a/b_c/d-e:v1.2",
                                   "registry.example.com:443/team/app@sha256:" + "a" * 64,
                                   "gcr.io/x/y:tag@sha256:" + "0" * 64, "[::1]:5000/img", "a__b/c.d---e"])
def test_real_references_are_accepted(image):
    assert re.fullmatch(IMAGE_REFERENCE, image)
    assert run(pod({"image": image}))[-1] == image


def test_the_tenant_policy_uses_the_same_grammar():
    import yaml
    from operators.serverlesscluster.cluster import COMPATIBILITY_POLICY
    docs = [d for d in yaml.safe_load_all(COMPATIBILITY_POLICY.read_text()) if d]
    policy = next(d for d in docs if d["metadata"]["name"] == "sk8s-image-references" and "variables" in d["spec"])
    variables = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}
    assert variables["imageReference"] == f"r'{IMAGE_REFERENCE}'"
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    assert {"pods", "pods/ephemeralcontainers"} <= set(rules[0]["resources"]) and "UPDATE" in rules[0]["operations"]
    assert all(f"variables.spec.{lst}.transformList" in variables["imageRefusals"]
               for lst in ("containers", "initContainers", "ephemeralContainers"))


@pytest.mark.parametrize("value", ["1.2.3.4,5.6.7.8", "a b", "x\nnameserver 1.1.1.1", 'q"', ""])
def test_list_options_refuse_what_podman_would_split(value):
    s = pod({})  # past the schema (which refuses these too): the builder refuses them itself
    s.dnsConfig = PodDNSConfig.model_construct(options=[PodDNSConfigOption.model_construct(name=value, value=None)])
    with pytest.raises(InvalidSpecError) as err:
        dns_args(s, None)
    assert "dnsConfig.options" in str(err.value) and err.value.reason == "CreateContainerConfigError"
    s.dnsConfig = PodDNSConfig.model_construct(nameservers=[value])
    with pytest.raises(InvalidSpecError):
        dns_args(s, None)
    with pytest.raises(ValueError):
        pod({}, dnsConfig={"options": [{"name": value or ","}], "nameservers": [value]})


def test_dns_options_are_single_and_host_aliases_are_the_kubelets_lines():
    s = pod({}, dnsPolicy="ClusterFirst",
            dnsConfig={"nameservers": ["1.1.1.1"], "searches": ["a.example"], "options": [{"name": "ndots", "value": "2"}]},
            hostAliases=[{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar"]}, {"ip": "fe80::1", "hostnames": ["v6"]}])
    assert dns_args(s, "10.0.0.2") == ["--dns=10.0.0.2", "--dns=1.1.1.1", "--dns-search=a.example",
                                       "--dns-option=ndots:2"]
    lines = alias_lines(s.hostAliases)
    assert lines == ["# Entries added by HostAliases.", "10.1.2.3\tfoo.local\tbar", "fe80::1\tv6"]
    # not podman's one line per name: the provider writes the block into the pod's hosts file
    assert not any(a.startswith("--add-host") for a in run(s, new_pod=True) + pod_create_args(REF, s, network="n", dns=[]))
    podman_hosts = "127.0.0.1\tlocalhost\n10.88.0.5\tweb web-infra\n"
    out = with_alias_lines(podman_hosts, lines)
    assert out == podman_hosts + "\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar\nfe80::1\tv6\n"
    assert with_alias_lines(out, lines) == out  # again after a provider restart: unchanged
    assert with_alias_lines(podman_hosts, []) == podman_hosts
    assert alias_lines(None) == []


@pytest.mark.parametrize("alias", [{"ip": "--privileged", "hostnames": ["a"]}, {"ip": "1.2.3.4", "hostnames": ["-a"]},
                                   {"ip": "1.2.3.4,5.6.7.8", "hostnames": ["a"]},
                                   {"ip": "1.2.3.4", "hostnames": ["a\n9.9.9.9 b"]}])
def test_host_aliases_outside_the_grammar_are_refused(alias):
    with pytest.raises(ValueError):
        pod({}, hostAliases=[alias])
    s = pod({})
    s.hostAliases = [HostAlias.model_construct(**alias)]
    with pytest.raises(InvalidSpecError):
        alias_lines(s.hostAliases)  # the builder refuses too, whatever the schema let through


@pytest.mark.parametrize("command", [["--privileged"], ["--", "x"], ["-it", "sh"], ["sh", "-c", "--volume=/:/h"]])
def test_exec_and_attach_put_names_and_commands_after_the_terminator(command):
    for stdin, tty in itertools.product((False, True), repeat=2):
        argv = exec_args("sk8s-1-c", command, stdin=stdin, tty=tty)
        options, positional = parse(argv[1:])
        check_options(options)
        assert positional == ["sk8s-1-c", *command]
    options, positional = parse(attach_args("sk8s-1-c", stdin=False)[1:])
    check_options(options)
    assert positional == ["sk8s-1-c"]


def test_a_mount_path_with_a_colon_is_refused():
    s = pod({"volumeMounts": [{"name": "v", "mountPath": "/data:/etc:rw"}]}, volumes=[{"name": "v", "emptyDir": {}}])
    with pytest.raises(InvalidSpecError) as err:
        run(s)
    assert "mountPath" in str(err.value)


# --- what execve can carry --------------------------------------------------------------

def test_a_variable_over_the_string_limit_is_a_config_error_naming_it():
    s = pod({"env": [{"name": "SMALL", "value": "x"}, {"name": "BIG", "value": "x" * (1 << 20)}]})
    with pytest.raises(InvalidSpecError) as err:
        run(s)
    assert err.value.reason == "CreateContainerConfigError" and not err.value.retryable
    assert str(err.value) == ("env BIG of container c is 1048580 bytes, over the limit of 131065 bytes "
                              "for one variable")


def test_a_variable_just_under_the_limit_runs():
    value = "x" * (execlimits.MAX_ARG_STRLEN - 1 - len("--env=V="))
    assert f"--env=V={value}" in run(pod({"env": [{"name": "V", "value": value}]}))
    with pytest.raises(InvalidSpecError):
        run(pod({"env": [{"name": "V", "value": value + "x"}]}))


def test_many_variables_over_the_total_limit_name_the_sizes():
    env = [{"name": f"V{i}", "value": "y" * 100_000} for i in range(12)]
    with pytest.raises(InvalidSpecError) as err:
        run(pod({"env": env}))
    assert re.fullmatch(r"environment of container c is \d+ bytes and its command line \d+ bytes, over the "
                        rf"limit of {execlimits.MAX_TOTAL} bytes together", str(err.value))


def test_a_long_argument_and_a_nul_byte_are_named():
    with pytest.raises(InvalidSpecError) as err:
        run(pod({"args": ["ok", "z" * execlimits.MAX_ARG_STRLEN]}))
    assert str(err.value).startswith("args[1] of container c is 131072 bytes")
    with pytest.raises(InvalidSpecError) as err:
        run(pod({"env": [{"name": "N", "value": "a\0b"}]}))
    assert str(err.value) == "env N of container c contains a NUL byte"


# --- podman that cannot be executed, hostAliases from the tenant pod ---------------------

def test_podman_that_cannot_be_executed_is_a_named_provider_error():
    import asyncio
    from operators.providers.errors import ProviderError
    from operators.providers.local.podman import Podman
    p = Podman("/dev/null", binary="true")
    for args, cause in ((["run", "x" * (2 * execlimits.MAX_ARG_STRLEN)], "Argument list too long"),
                        (["run", "a\0b"], "null byte")):
        with pytest.raises(ProviderError) as err:
            asyncio.run(p.run(*args))
        assert cause in str(err.value) and err.value.reason == "RunContainerError" and not err.value.retryable


def test_tenant_host_aliases_reach_the_sandbox_and_are_not_reported_dropped():
    from operators.models.sandboxpod import SandboxPodSpec
    from operators.virtualnode.mapping.spec import build_sandboxpod, dropped_fields
    p = {"metadata": {"name": "web", "namespace": "default", "uid": "u1"},
         "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}],
                  "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar"]}, {"ip": "127.0.0.2"}]}}
    spec = build_sandboxpod(p, namespace="n", cluster="c", cluster_uid="cu", env={})["spec"]
    assert spec["hostAliases"] == [{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar"]}, {"ip": "127.0.0.2"}]
    assert alias_lines(SandboxPodSpec.model_validate(spec).hostAliases) == [
        "# Entries added by HostAliases.", "10.1.2.3\tfoo.local\tbar", "127.0.0.2\t"]
    assert "hostAliases" not in " ".join(dropped_fields(p))


def test_containers_conf_leaves_the_hosts_entries_of_this_machine_out():
    from operators.config import CONTAINERS_CONF
    assert 'base_hosts_file = "none"' in CONTAINERS_CONF and 'host_containers_internal_ip = "none"' in CONTAINERS_CONF


@pytest.mark.parametrize("arg", ["--sysctl=net.ipv4.tcp_keepalive_time=600,net.ipv4.ip_forward=1",
                                 "--cap-add=CAP_CHOWN,CAP_SYS_ADMIN", "--group-add=1,0", '--dns-option="a',
                                 "--add-host=a:1.2.3.4\n9.9.9.9 b", "--cap-drop=CAP_KILL CAP_CHOWN"])
def test_no_builder_can_pass_a_list_option_that_podman_would_split(arg):
    from operators.providers.local.spec import check_list_options
    c = pod({}).containers[0]
    with pytest.raises(InvalidSpecError) as err:
        check_list_options(c, ["run", arg, "--", "img"])
    assert err.value.reason == "CreateContainerConfigError"
    check_list_options(c, ["run", "--sysctl=net.ipv4.tcp_keepalive_time=600", "--", "img", arg])  # data after --


@pytest.mark.parametrize("server", ["10.0.0.1,nolock", "nfs.example,port=1", "-oexec", "a b", "x\ny", 'q"'])
def test_an_nfs_server_cannot_add_mount_options(server):
    from operators.models.volumes import Volume
    from operators.providers.local.volumes import nfs_create_args
    with pytest.raises(InvalidSpecError) as err:
        nfs_create_args(REF, Volume.model_validate({"name": "d", "nfs": {"server": server, "path": "/x"}}), {},
                        "10.0.0.1")
    assert "nfs.server" in str(err.value)
    args = nfs_create_args(REF, Volume.model_validate({"name": "d", "nfs": {"server": "nas", "path": "/x,y"}}), {},
                           "10.0.0.1")
    # The checked address, never the name, reaches mount(8) (nfspolicy.py).
    assert "--opt=o=addr=10.0.0.1,nosuid,nodev,rw" in args and "--opt=device=10.0.0.1:/x,y" in args
    args = nfs_create_args(REF, Volume.model_validate({"name": "d", "nfs": {"server": "nas", "path": "/x"}}), {},
                           "2001:db8::5")
    assert "--opt=o=addr=2001:db8::5,nosuid,nodev,rw" in args and "--opt=device=[2001:db8::5]:/x" in args
