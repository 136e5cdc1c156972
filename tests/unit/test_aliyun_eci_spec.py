"""PodSpec -> ECI CreateContainerGroup query parameters (pure), spelled as the cloud's API."""
import base64
import re
from urllib.parse import parse_qs, urlparse

import pytest
from aliyunsdkeci.request.v20180808.CreateContainerGroupRequest import CreateContainerGroupRequest

from operators.models.podspec import PodSpec
from operators.providers.aliyun.eci_resources import round_up
from operators.providers.aliyun.eci_spec import EciPlacement, build_create_params, unsupported_fields
from operators.providers.errors import InvalidSpecError, ProviderError
from operators.providers.sandbox import SandboxRef

REF = SandboxRef("tenant-a", "web-5d9c", "0b7e3c1a-5f7e-4c44-9a59-2f1e8c2b6d10")
PLACEMENT = EciPlacement(region_id="cn-hangzhou", zone_id="cn-hangzhou-h", vswitch_id="vsw-bp1xpiowfm5vo8o3c0001",
                         security_group_id="sg-uf66jeqopgqa9hdn0001", cluster_uid="c-uid-1", home_id="home-1",
                         name_servers=("10.96.0.10",), searches=("default.svc.cluster.local", "svc.cluster.local"),
                         ndots=5)
LABELS = {"sk8s.io/cluster": "demo", "sk8s.io/cluster-uid": "c-uid-1"}
NGINX_CONF = b"server { listen 80; }\n"


def pod(**extra) -> PodSpec:
    return PodSpec.model_validate({"containers": [{"name": "c", "image": "nginx:1.25"}], **extra})


def build(spec: PodSpec, content=None, labels=LABELS, placement=PLACEMENT) -> dict[str, str]:
    return build_create_params(REF, spec, labels, placement, content or {})


REPRESENTATIVE = {
    "restartPolicy": "Always", "terminationGracePeriodSeconds": 20,
    "containers": [
        {"name": "web", "image": "registry.example.com/nginx:1.25",
         "env": [{"name": "MODE", "value": "prod"},
                 {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
         "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 53, "protocol": "UDP"}],
         "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}, "requests": {"cpu": "100m"}},
         "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
         "livenessProbe": {"tcpSocket": {"port": 80}, "initialDelaySeconds": 3, "failureThreshold": 4},
         "volumeMounts": [{"name": "config", "mountPath": "/etc/nginx/conf.d", "readOnly": True}]},
        {"name": "sidecar", "image": "busybox:latest", "command": ["sh", "-c"], "args": ["sleep 3600"],
         "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
         "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
         "livenessProbe": {"exec": {"command": ["cat", "/tmp/ok"]}, "timeoutSeconds": 2}},
    ],
    "volumes": [{"name": "config", "configMap": {"name": "nginx", "defaultMode": 0o644}}],
}


def test_a_representative_pod_gives_exactly_these_parameters():
    params = build(PodSpec.model_validate(REPRESENTATIVE), {"config": {"default.conf": (NGINX_CONF, 0o644)}})
    assert params == {
        "RegionId": "cn-hangzhou", "ZoneId": "cn-hangzhou-h", "VSwitchId": "vsw-bp1xpiowfm5vo8o3c0001",
        "SecurityGroupId": "sg-uf66jeqopgqa9hdn0001", "ContainerGroupName": "sk8s-" + REF.uid,
        "ClientToken": "sk8s-" + REF.uid, "RestartPolicy": "Always", "TerminationGracePeriodSeconds": "20",
        # 0.5 + 0.25 cores, 0.5 + 0.25 GiB: ECI's smallest size above is 1 vCPU, 2 GiB.
        "Cpu": "1.000", "Memory": "2.000", "HostName": "web-5d9c",
        "Container.1.Name": "web", "Container.1.Image": "registry.example.com/nginx:1.25",
        "Container.1.ImagePullPolicy": "IfNotPresent", "Container.1.Cpu": "0.500", "Container.1.Memory": "0.500",
        "Container.1.EnvironmentVar.1.Key": "MODE", "Container.1.EnvironmentVar.1.Value": "prod",
        "Container.1.EnvironmentVar.2.Key": "POD_NAME", "Container.1.EnvironmentVar.2.Value": "web-5d9c",
        "Container.1.Port.1.Port": "80", "Container.1.Port.1.Protocol": "TCP",
        "Container.1.Port.2.Port": "53", "Container.1.Port.2.Protocol": "UDP",
        "Container.1.VolumeMount.1.Name": "config", "Container.1.VolumeMount.1.MountPath": "/etc/nginx/conf.d",
        "Container.1.VolumeMount.1.ReadOnly": "true",
        "Container.1.ReadinessProbe.HttpGet.Path": "/healthz", "Container.1.ReadinessProbe.HttpGet.Port": "80",
        "Container.1.ReadinessProbe.HttpGet.Scheme": "HTTP", "Container.1.ReadinessProbe.PeriodSeconds": "5",
        "Container.1.LivenessProbe.TcpSocket.Port": "80", "Container.1.LivenessProbe.InitialDelaySeconds": "3",
        "Container.1.LivenessProbe.FailureThreshold": "4",
        "Container.2.Name": "sidecar", "Container.2.Image": "busybox:latest", "Container.2.ImagePullPolicy": "Always",
        "Container.2.Command.1": "sh", "Container.2.Command.2": "-c", "Container.2.Arg.1": "sleep 3600",
        "Container.2.Cpu": "0.250", "Container.2.Memory": "0.250",
        "Container.2.EnvironmentVar.1.Key": "POD_IP", "Container.2.EnvironmentVar.1.FieldRef.FieldPath": "status.podIP",
        "Container.2.LivenessProbe.Exec.Command.1": "cat", "Container.2.LivenessProbe.Exec.Command.2": "/tmp/ok",
        "Container.2.LivenessProbe.TimeoutSeconds": "2",
        "Volume.1.Name": "config", "Volume.1.Type": "ConfigFileVolume", "Volume.1.ConfigFileVolume.DefaultMode": "0644",
        "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path": "default.conf",
        "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content": base64.b64encode(NGINX_CONF).decode(),
        "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Mode": "0644",
        "DnsPolicy": "None", "DnsConfig.NameServer.1": "10.96.0.10",
        "DnsConfig.Search.1": "default.svc.cluster.local", "DnsConfig.Search.2": "svc.cluster.local",
        "DnsConfig.Option.1.Name": "ndots", "DnsConfig.Option.1.Value": "5",
        "Tag.1.Key": "sk8s.io/cluster", "Tag.1.Value": "demo", "Tag.2.Key": "sk8s.io/cluster-uid", "Tag.2.Value": "c-uid-1",
        "Tag.3.Key": "sk8s.io/home", "Tag.3.Value": "home-1", "Tag.4.Key": "sk8s.io/name", "Tag.4.Value": "web-5d9c",
        "Tag.5.Key": "sk8s.io/namespace", "Tag.5.Value": "tenant-a", "Tag.6.Key": "sk8s.io/uid", "Tag.6.Value": REF.uid,
    }


# Every key the builder may write, as the ECI API reference (CreateContainerGroup) spells it.
_C = r"(Container|InitContainer)\.\d+\."
_PROBE = r"(Readiness|Liveness)Probe\.(HttpGet\.(Path|Port|Scheme)|TcpSocket\.Port|Exec\.Command\.\d+|" \
         r"(InitialDelay|Period|Timeout)Seconds|(Success|Failure)Threshold)"
_HOOK = r"Lifecycle(PostStart|PreStop)Handler(Exec\.\d+|HttpGet(Path|Port|Scheme|Host)|HttpGetHttpHeader\.\d+\.(Name|Value))"
DOCUMENTED = [re.compile(f"^{p}$") for p in (
    r"RegionId|ZoneId|VSwitchId|SecurityGroupId|ContainerGroupName|ClientToken|RestartPolicy|Cpu|Memory|HostName",
    r"TerminationGracePeriodSeconds|ActiveDeadlineSeconds|ShareProcessNamespace|DnsPolicy",
    r"DnsConfig\.(NameServer|Search)\.\d+|DnsConfig\.Option\.\d+\.(Name|Value)", r"HostAliase\.\d+\.(Ip|Hostname\.\d+)",
    r"(Host)?SecurityContext\.Sysctl\.\d+\.(Name|Value)", r"Tag\.\d+\.(Key|Value)",
    _C + r"(Name|Image|ImagePullPolicy|Cpu|Memory|WorkingDir|Command\.\d+|Arg\.\d+|Tty|Stdin|TerminationMessagePath)",
    _C + r"EnvironmentVar\.\d+\.(Key|Value|FieldRef\.FieldPath)", _C + r"Port\.\d+\.(Port|Protocol)",
    _C + r"VolumeMount\.\d+\.(Name|MountPath|ReadOnly|SubPath)", _C + _PROBE, _C + _HOOK,
    _C + r"SecurityContext\.(RunAsUser|ReadOnlyRootFilesystem|Capability\.Add\.\d+)",
    _C + r"SecurityContextRunAs(Group|NonRoot)",
    r"Volume\.\d+\.(Name|Type|EmptyDirVolume\.(Medium|SizeLimit)|NFSVolume\.(Server|Path|ReadOnly))",
    r"Volume\.\d+\.ConfigFileVolume\.(DefaultMode|ConfigFileToPath\.\d+\.(Path|Content|Mode))",
)]

EVERYTHING = {
    "activeDeadlineSeconds": 600, "shareProcessNamespace": True, "hostname": "h1",
    "hostAliases": [{"ip": "10.0.0.9", "hostnames": ["db", "db.local"]}],
    "securityContext": {"runAsUser": 1000, "sysctls": [{"name": "net.ipv4.ping_group_range", "value": "0 1000"},
                                                       {"name": "net.ipv4.tcp_keepalive_time", "value": "600"}]},
    "initContainers": [{"name": "init", "image": "busybox:1.36", "command": ["true"], "workingDir": "/w",
                        "resources": {"limits": {"cpu": "2", "memory": "1Gi"}},
                        "volumeMounts": [{"name": "scratch", "mountPath": "/s", "subPath": "a"}]}],
    "containers": [{"name": "app", "image": "app:2", "tty": True, "stdin": True, "workingDir": "/srv",
                    "terminationMessagePath": "/dev/termination-log",
                    "securityContext": {"runAsGroup": 3000, "runAsNonRoot": True, "readOnlyRootFilesystem": True,
                                        "capabilities": {"add": ["NET_RAW", "CHOWN"]}},
                    "lifecycle": {"postStart": {"exec": {"command": ["touch", "/tmp/up"]}},
                                  "preStop": {"httpGet": {"path": "/stop", "port": 8080,
                                                          "httpHeaders": [{"name": "X-A", "value": "1"}]}}},
                    "volumeMounts": [{"name": "scratch", "mountPath": "/s"}, {"name": "share", "mountPath": "/n"}]}],
    "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "512Mi"}},
                {"name": "share", "nfs": {"server": "10.0.0.5", "path": "/exports", "readOnly": True}}],
}


def test_every_key_is_one_the_api_documents():
    params = build(PodSpec.model_validate(EVERYTHING))
    unknown = [k for k in params if not any(p.match(k) for p in DOCUMENTED)]
    assert not unknown
    assert params["ShareProcessNamespace"] == "true" and params["ActiveDeadlineSeconds"] == "600"
    assert params["HostName"] == "h1"
    assert params["HostAliase.1.Ip"] == "10.0.0.9" and params["HostAliase.1.Hostname.2"] == "db.local"
    assert params["SecurityContext.Sysctl.1.Name"] == "net.ipv4.ping_group_range"
    assert params["HostSecurityContext.Sysctl.1.Name"] == "net.ipv4.tcp_keepalive_time"
    assert params["HostSecurityContext.Sysctl.1.Value"] == "600"


def test_init_containers_volumes_and_hooks():
    params = build(PodSpec.model_validate(EVERYTHING))
    assert params["InitContainer.1.Name"] == "init" and params["InitContainer.1.Command.1"] == "true"
    assert params["InitContainer.1.WorkingDir"] == "/w" and params["InitContainer.1.VolumeMount.1.SubPath"] == "a"
    assert params["InitContainer.1.SecurityContext.RunAsUser"] == "1000"  # the pod's, inherited
    # The init container's 2 cores outweigh the containers' none: 2 vCPU, and 1 GiB fits.
    assert (params["Cpu"], params["Memory"]) == ("2.000", "1.000")
    assert params["Volume.1.Type"] == "EmptyDirVolume" and params["Volume.1.EmptyDirVolume.Medium"] == "Memory"
    assert params["Volume.1.EmptyDirVolume.SizeLimit"] == "0.5"
    assert [params[f"Volume.2.{k}"] for k in ("Type", "NFSVolume.Server", "NFSVolume.Path", "NFSVolume.ReadOnly")] == [
        "NFSVolume", "10.0.0.5", "/exports", "true"]
    assert params["Container.1.LifecyclePostStartHandlerExec.1"] == "touch"
    assert params["Container.1.LifecyclePreStopHandlerHttpGetPort"] == "8080"
    assert params["Container.1.LifecyclePreStopHandlerHttpGetHttpHeader.1.Name"] == "X-A"
    assert params["Container.1.Tty"] == "true" and params["Container.1.Stdin"] == "true"


def test_security_context_merges_pod_and_container():
    params = build(PodSpec.model_validate(EVERYTHING))
    assert params["Container.1.SecurityContext.RunAsUser"] == "1000"
    assert params["Container.1.SecurityContextRunAsGroup"] == "3000"
    assert params["Container.1.SecurityContextRunAsNonRoot"] == "true"
    assert params["Container.1.SecurityContext.ReadOnlyRootFilesystem"] == "true"
    # NET_RAW is sent (ECI's default set lacks it); CHOWN is in every runtime's default set.
    assert [v for k, v in params.items() if ".Capability.Add." in k] == ["NET_RAW"]


def test_a_security_context_without_capabilities():
    params = build(pod(containers=[{"name": "c", "image": "i:1", "securityContext": {"runAsUser": 7}}]))
    assert params["Container.1.SecurityContext.RunAsUser"] == "7"
    assert not any(".Capability." in k or "ReadOnlyRootFilesystem" in k for k in params)


def test_hostile_values_reach_the_cloud_only_as_data():
    evil = "x&Action=DeleteContainerGroup&y=\n$(rm -rf /)"
    params = build(pod(containers=[{"name": "c", "image": "nginx:1.25", "args": [evil],
                                    "env": [{"name": "E", "value": evil}]}]))
    request = CreateContainerGroupRequest()
    for key, value in params.items():
        request.add_query_param(key, value)
    query = parse_qs(urlparse(request.get_url("cn-hangzhou", "ak", "secret")).query)
    assert query["Action"] == ["CreateContainerGroup"]
    assert query["Container.1.Arg.1"] == [evil] and query["Container.1.EnvironmentVar.1.Value"] == [evil]


def test_group_size_rounds_up_to_an_eci_size_and_defaults():
    assert round_up(0.3, 0.1) == (0.5, 1.0)
    assert round_up(7, 13) == (8.0, 16.0)
    assert round_up(2, 0.5) == (2.0, 1.0)
    assert round_up(1, 9) == (2.0, 16.0)  # 1 vCPU goes to 8 GiB only
    params = build(pod())
    assert (params["Cpu"], params["Memory"]) == ("2.000", "4.000")  # ECI's default, written out
    assert "Container.1.Cpu" not in params and "Container.1.Memory" not in params
    with pytest.raises(InvalidSpecError, match="largest ECI size"):
        build(pod(containers=[{"name": "c", "image": "i:1", "resources": {"limits": {"cpu": "65"}}}]))


def test_service_env_comes_first_and_yields_to_the_container():
    params = build(pod(serviceEnv=[{"name": "DB_SERVICE_HOST", "value": "10.0.0.1"}, {"name": "MODE", "value": "svc"}],
                       containers=[{"name": "c", "image": "i:1", "env": [{"name": "MODE", "value": "own"}]}]))
    env = [(params[f"Container.1.EnvironmentVar.{j}.Key"], params[f"Container.1.EnvironmentVar.{j}.Value"])
           for j in (1, 2)]
    assert env == [("DB_SERVICE_HOST", "10.0.0.1"), ("MODE", "own")]
    assert "Container.1.EnvironmentVar.3.Key" not in params


def test_the_host_ip_is_the_pod_ip_on_eci():
    params = build(pod(containers=[{"name": "c", "image": "i:1", "env": [
        {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}]}]))
    assert params["Container.1.EnvironmentVar.1.FieldRef.FieldPath"] == "status.podIP"
    assert "Container.1.EnvironmentVar.1.Value" not in params


def test_content_volumes():
    spec = pod(volumes=[{"name": "s", "secret": {"secretName": "x"}}, {"name": "opt", "configMap": {"name": "gone"}},
                        {"name": "d", "downwardAPI": {"items": [{"path": "labels"}]}}])
    content = {"s": {"tls/key.pem": (b"\x00\xffkey", 0o400), "a": (b"", 0o644)}, "opt": {},
               "d": {"labels": (b'app="web"', 0o644)}}
    params = build(spec, content)
    assert params["Volume.1.Type"] == "ConfigFileVolume" and "Volume.1.ConfigFileVolume.DefaultMode" not in params
    assert params["Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path"] == "a"  # sorted by path
    assert params["Volume.1.ConfigFileVolume.ConfigFileToPath.2.Path"] == "tls/key.pem"
    assert base64.b64decode(params["Volume.1.ConfigFileVolume.ConfigFileToPath.2.Content"]) == b"\x00\xffkey"
    assert params["Volume.1.ConfigFileVolume.ConfigFileToPath.2.Mode"] == "0400"
    assert params["Volume.2.Type"] == "EmptyDirVolume"  # an optional source that does not exist: no files
    assert params["Volume.3.ConfigFileVolume.ConfigFileToPath.1.Content"] == base64.b64encode(b'app="web"').decode()


def test_content_volume_errors():
    spec = pod(volumes=[{"name": "s", "secret": {"secretName": "x"}}])
    with pytest.raises(ProviderError) as err:
        build(spec, {})
    assert err.value.retryable and err.value.reason == "VolumeContentMissing"
    with pytest.raises(InvalidSpecError, match="at most 32768"):
        build(spec, {"s": {"big": (b"x" * 32769, 0o644)}})
    with pytest.raises(InvalidSpecError, match="not a relative path"):
        build(spec, {"s": {"../etc/passwd": (b"x", 0o644)}})


def test_dns_policies():
    cfg = {"nameservers": ["1.1.1.1"], "searches": ["corp.example"], "options": [{"name": "ndots", "value": "2"},
                                                                                   {"name": "edns0"}]}
    first = build(pod(dnsConfig=cfg))
    assert [first[f"DnsConfig.NameServer.{i}"] for i in (1, 2)] == ["10.96.0.10", "1.1.1.1"]
    assert first["DnsConfig.Search.3"] == "corp.example"
    assert (first["DnsConfig.Option.1.Name"], first["DnsConfig.Option.1.Value"]) == ("ndots", "2")  # the pod's wins
    assert first["DnsConfig.Option.2.Name"] == "edns0" and "DnsConfig.Option.2.Value" not in first
    none = build(pod(dnsPolicy="None", dnsConfig=cfg))
    assert none["DnsPolicy"] == "None" and none["DnsConfig.NameServer.1"] == "1.1.1.1"
    assert "DnsConfig.NameServer.2" not in none and "DnsConfig.Search.2" not in none
    default = build(pod(dnsPolicy="Default"))
    assert default["DnsPolicy"] == "Default" and not any(k.startswith("DnsConfig.") for k in default)
    no_resolver = EciPlacement("cn-hangzhou", None, "vsw-1", "sg-1", "c-uid-1", "home-1")
    fallback = build(pod(), placement=no_resolver)
    assert fallback["DnsPolicy"] == "Default" and "ZoneId" not in fallback


def test_tags_the_cloud_would_refuse_are_refused():
    with pytest.raises(InvalidSpecError, match="at most 20"):
        build(pod(), labels={f"sk8s.io/l{i}": "v" for i in range(16)})
    with pytest.raises(InvalidSpecError, match="not a valid ECI tag"):
        build(pod(), labels={"sk8s.io/x": "v" * 129})
    with pytest.raises(InvalidSpecError, match="not a valid ECI tag"):
        build(pod(), labels={"acs:owner": "v"})


def test_named_probe_ports_resolve_or_fail():
    probe = {"httpGet": {"path": "/", "port": "metrics"}}
    with pytest.raises(InvalidSpecError, match="names no port"):
        build(pod(containers=[{"name": "c", "image": "i:1", "readinessProbe": probe}]))


def test_fqdn_hostname_and_its_limit():
    params = build(pod(hostname="db-0", hostDomain="db.tenant-a.svc.cluster.local", setHostnameAsFQDN=True))
    assert params["HostName"] == "db-0.db.tenant-a.svc.cluster.local"
    with pytest.raises(InvalidSpecError, match="too long"):
        build(pod(hostname="a" * 40, hostDomain="b" * 40, setHostnameAsFQDN=True))


UNSUPPORTED = {
    "securityContext": {"fsGroup": 2000, "sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"},
                                                     {"name": "net.ipv4.tcp_syncookies", "value": "1"}]},
    "serviceEnv": [{"name": "OK_NAME", "value": "1"}],
    "initContainers": [{"name": "side", "image": "i:1", "restartPolicy": "Always",
                        "securityContext": {"runAsGroup": 5}}],
    "containers": [{"name": "c", "image": "i:1",
                    "env": [{"name": "my.var", "value": "1"},
                            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "x", "key": "y"}}}],
                    "ports": [{"containerPort": 9, "protocol": "SCTP"}],
                    "startupProbe": {"exec": {"command": ["true"]}},
                    "readinessProbe": {"grpc": {"port": 9}, "successThreshold": 2},
                    "livenessProbe": {"httpGet": {"port": 80, "httpHeaders": [{"name": "A", "value": "b"}]}},
                    "lifecycle": {"preStop": {"sleep": {"seconds": 1}}},
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                    "volumeMounts": [{"name": "v", "mountPath": "/v", "subPathExpr": "$(POD)"}],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                        "seccompProfile": {"type": "RuntimeDefault"}}}],
    "volumes": [{"name": "v", "emptyDir": {}}],
}


def test_unsupported_fields_are_named_and_refused():
    spec = PodSpec.model_validate(UNSUPPORTED)
    assert unsupported_fields(spec) == [
        "spec.securityContext.fsGroup", "spec.securityContext.sysctls[0]", "spec.securityContext.sysctls[1]",
        "spec.containers[0].ports[0].protocol", "spec.containers[0].env[0].name", "spec.containers[0].env[1].valueFrom",
        "spec.containers[0].volumeMounts[0].subPathExpr", "spec.containers[0].terminationMessagePolicy",
        "spec.containers[0].securityContext.capabilities.drop",
        "spec.containers[0].securityContext.allowPrivilegeEscalation",
        "spec.containers[0].securityContext.seccompProfile", "spec.containers[0].startupProbe",
        "spec.containers[0].readinessProbe.grpc", "spec.containers[0].readinessProbe.successThreshold",
        "spec.containers[0].livenessProbe.httpGet.httpHeaders", "spec.containers[0].lifecycle.preStop.sleep",
        "spec.initContainers[0].restartPolicy", "spec.initContainers[0].securityContext.runAsGroup",
    ]
    with pytest.raises(InvalidSpecError) as err:
        build(spec)
    assert "spec.containers[0].startupProbe: not supported on ECI: ECI has no startup probes" in str(err.value)
    assert not err.value.retryable


def test_more_containers_or_volumes_than_eci_takes():
    many = [{"name": f"c{i}", "image": "i:1"} for i in range(21)]
    assert unsupported_fields(pod(containers=many)) == ["spec.containers"]
    vols = [{"name": f"v{i}", "emptyDir": {}} for i in range(21)]
    assert unsupported_fields(pod(volumes=vols)) == ["spec.volumes"]
    with pytest.raises(InvalidSpecError, match="spec.volumes: not supported on ECI: ECI takes at most 20"):
        build(pod(volumes=vols))
    assert unsupported_fields(PodSpec.model_validate(REPRESENTATIVE)) == []


def test_an_admins_sandbox_has_no_cluster_tag():
    admin = EciPlacement(region_id="cn-hangzhou", zone_id=None, vswitch_id="vsw-1", security_group_id="sg-1",
                         cluster_uid="", home_id="home-1")
    out = build(pod(), labels={}, placement=admin)
    keys = {v for k, v in out.items() if k.startswith("Tag.") and k.endswith(".Key")}
    assert "sk8s.io/cluster-uid" not in keys and {"sk8s.io/home", "sk8s.io/uid"} <= keys
