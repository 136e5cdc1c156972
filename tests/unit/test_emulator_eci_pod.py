"""The emulator's reading of a container group back into a PodSpec (eci_pod.pod_from_group):
the aliyun provider's builder, then the API's unflattening, then pod_from_group give back
the pod that was built from; what the emulator cannot run is refused by parameter name."""
from __future__ import annotations

import base64

import pytest

from operators.emulator.alibaba import params as p
from operators.emulator.alibaba.eci_pod import pod_from_group
from operators.emulator.alibaba.errors import ApiError
from operators.models.podspec import PodSpec
from operators.quantity import cpu_cores, memory_bytes

from .test_aliyun_eci_spec import EVERYTHING, NGINX_CONF, REF, REPRESENTATIVE, build

GIB = 2**30


def group_of(params: dict[str, str]) -> dict:
    """What the API hands a backend: the business parameters, unflattened, token removed."""
    return p.unflatten({k: v for k, v in p.business(params).items() if k != "ClientToken"})


def round_trip(pod: dict, content=None):
    return pod_from_group(group_of(build(PodSpec.model_validate(pod), content)))


def by_name(containers) -> dict:
    return {c.name: c for c in containers}


def limits(c) -> tuple[float, float]:
    lim = c.resources.limits
    return cpu_cores(lim["cpu"]), memory_bytes(lim["memory"]) / GIB


def test_the_representative_pod_comes_back():
    spec, content = round_trip(REPRESENTATIVE, {"config": {"default.conf": (NGINX_CONF, 0o644)}})
    assert spec.restartPolicy == "Always" and spec.terminationGracePeriodSeconds == 20
    web, sidecar = by_name(spec.containers)["web"], by_name(spec.containers)["sidecar"]
    assert [c.name for c in spec.containers] == ["web", "sidecar"]
    assert web.image == "registry.example.com/nginx:1.25" and web.imagePullPolicy == "IfNotPresent"
    assert web.command is None and web.args is None
    assert sidecar.command == ["sh", "-c"] and sidecar.args == ["sleep 3600"]
    # metadata fieldRefs were resolved by the builder; the pod's address stays a fieldRef
    assert [(e.name, e.value) for e in web.env] == [("MODE", "prod"), ("POD_NAME", "web-5d9c")]
    assert sidecar.env[0].name == "POD_IP" and sidecar.env[0].valueFrom.fieldRef.fieldPath == "status.podIP"
    assert [(x.containerPort, x.protocol) for x in web.ports] == [(80, "TCP"), (53, "UDP")]
    assert limits(web) == (0.5, 0.5) and limits(sidecar) == (0.25, 0.25)
    # the named probe port was resolved to its number by the builder
    assert web.readinessProbe.httpGet.path == "/healthz" and web.readinessProbe.httpGet.port == 80
    assert web.readinessProbe.periodSeconds == 5
    assert web.livenessProbe.tcpSocket.port == 80 and web.livenessProbe.initialDelaySeconds == 3
    assert web.livenessProbe.failureThreshold == 4
    assert sidecar.livenessProbe.exec.command == ["cat", "/tmp/ok"] and sidecar.livenessProbe.timeoutSeconds == 2
    mount = web.volumeMounts[0]
    assert (mount.name, mount.mountPath, mount.readOnly) == ("config", "/etc/nginx/conf.d", True)
    (vol,) = spec.volumes
    assert vol.name == "config" and vol.has_content and vol.projected.defaultMode == 0o644
    assert content == {"config": {"default.conf": (NGINX_CONF, 0o644)}}
    # the tenant's resolver and search path, as the builder wrote them (DnsPolicy None)
    assert spec.dnsPolicy == "None" and spec.dnsConfig.nameservers == ["10.96.0.10"]
    assert spec.dnsConfig.searches == ["default.svc.cluster.local", "svc.cluster.local"]
    assert [(o.name, o.value) for o in spec.dnsConfig.options] == [("ndots", "5")]
    assert spec.hostname == REF.name


def test_every_other_field_the_builder_writes_comes_back():
    pod = {k: v for k, v in EVERYTHING.items() if k != "activeDeadlineSeconds"}
    spec, content = round_trip(pod)
    (app,), (init,) = spec.containers, spec.initContainers
    assert spec.shareProcessNamespace and spec.hostname == "h1"
    assert [(a.ip, a.hostnames) for a in spec.hostAliases] == [("10.0.0.9", ["db", "db.local"])]
    assert [(s.name, s.value) for s in spec.securityContext.sysctls] == [
        ("net.ipv4.ping_group_range", "0 1000"), ("net.ipv4.tcp_keepalive_time", "600")]
    assert init.command == ["true"] and init.workingDir == "/w" and init.volumeMounts[0].subPath == "a"
    assert init.securityContext.runAsUser == 1000
    assert app.tty and app.stdin and app.workingDir == "/srv" and app.terminationMessagePath == "/dev/termination-log"
    sc = app.securityContext
    assert (sc.runAsUser, sc.runAsGroup, sc.runAsNonRoot, sc.readOnlyRootFilesystem) == (1000, 3000, True, True)
    assert sc.capabilities.add == ["NET_RAW"]  # CHOWN is a default one: the builder leaves it out
    assert app.lifecycle.postStart.exec.command == ["touch", "/tmp/up"]
    stop = app.lifecycle.preStop.httpGet
    assert (stop.path, stop.port, [(h.name, h.value) for h in stop.httpHeaders]) == ("/stop", 8080, [("X-A", "1")])
    scratch, share = spec.volumes
    assert scratch.emptyDir.medium == "Memory" and memory_bytes(scratch.emptyDir.sizeLimit) == 512 * 2**20
    assert (share.nfs.server, share.nfs.path, share.nfs.readOnly) == ("10.0.0.5", "/exports", True)
    assert content == {}
    # A container that names no size runs within the group's (2 vCPU, 1 GiB here), as on ECI.
    assert limits(app) == (2.0, 1.0)


def test_restart_policy_grace_and_files_with_their_own_modes():
    pod = {"restartPolicy": "OnFailure", "terminationGracePeriodSeconds": 0,
           "containers": [{"name": "job", "image": "busybox:1.36", "command": ["sh", "-c", "exit 3"],
                           "volumeMounts": [{"name": "creds", "mountPath": "/creds"}]}],
           "volumes": [{"name": "creds", "secret": {"secretName": "s", "defaultMode": 0o400}}]}
    files = {"token": (b"\x00\xffsecret", 0o400), "dir/ca.crt": (b"-----BEGIN", 0o444)}
    spec, content = round_trip(pod, {"creds": files})
    assert spec.restartPolicy == "OnFailure" and spec.terminationGracePeriodSeconds == 0
    assert content == {"creds": files}
    assert spec.volumes[0].projected.defaultMode == 0o400


def test_a_content_volume_without_files_is_an_empty_directory():
    pod = {"containers": [{"name": "c", "image": "busybox"}],
           "volumes": [{"name": "opt", "configMap": {"name": "missing", "optional": True}}]}
    spec, content = round_trip(pod, {"opt": {}})
    assert spec.volumes[0].emptyDir is not None and content == {}


BASE = {"ContainerGroupName": "g1", "SecurityGroupId": "sg", "VSwitchId": "vsw",
        "Container.1.Name": "c", "Container.1.Image": "busybox"}


def refused(**extra: str) -> str:
    with pytest.raises(ApiError) as e:
        pod_from_group(p.unflatten({**BASE, **extra}))
    assert e.value.code == "InvalidParameter" and e.value.status == 400
    return e.value.message


@pytest.mark.parametrize("extra, field", [
    ({"Container.1.Gpu": "1"}, "Container.1.Gpu"),
    ({"InstanceType": "ecs.c6.large"}, "InstanceType"),
    ({"ActiveDeadlineSeconds": "60"}, "ActiveDeadlineSeconds"),
    ({"Container.1.StartupProbe.TcpSocket.Port": "80"}, "Container.1.StartupProbe"),
    ({"Container.1.ReadinessProbe.TcpSocket.Port": "80", "Container.1.ReadinessProbe.TcpSocket.Host": "h"},
     "Container.1.ReadinessProbe.TcpSocket.Host"),
    ({"InitContainer.1.Name": "i", "InitContainer.1.Image": "busybox", "InitContainer.1.ReadinessProbe.Exec.Command.1": "x"},
     "InitContainer.1.ReadinessProbe"),
    ({"InitContainer.1.Name": "i", "InitContainer.1.Image": "busybox", "InitContainer.1.SecurityContextRunAsGroup": "5"},
     "InitContainer.1.SecurityContextRunAsGroup"),
    ({"Container.1.EnvironmentVar.1.Key": "A", "Container.1.EnvironmentVar.1.FieldRef.FieldPath": "status.hostIP"},
     "Container.1.EnvironmentVar.1.FieldRef.FieldPath"),
    ({"Container.1.SecurityContext.Capability.Add.1": "SYS_ADMIN"}, "Container.1.SecurityContext.Capability.Add.1"),
    ({"HostSecurityContext.Sysctl.1.Name": "net.core.somaxconn", "HostSecurityContext.Sysctl.1.Value": "1"},
     "HostSecurityContext.Sysctl.1.Name"),
    ({"Volume.1.Name": "v", "Volume.1.Type": "DiskVolume"}, "Volume.1.Type"),
    ({"Volume.1.Name": "v", "Volume.1.Type": "EmptyDirVolume", "Volume.1.EmptyDirVolume.Medium": "LocalRaid0"},
     "Volume.1.EmptyDirVolume.Medium"),
    ({"Volume.1.Name": "v", "Volume.1.Type": "EmptyDirVolume", "Volume.1.NFSVolume.Server": "x"},
     "Volume.1.NFSVolume"),
    ({"Volume.1.Name": "v", "Volume.1.Type": "ConfigFileVolume",
      "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path": "../escape",
      "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content": "eA=="},
     "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path"),
    ({"Volume.1.Name": "v", "Volume.1.Type": "ConfigFileVolume",
      "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path": "f",
      "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content": "not base64!"},
     "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content"),
    ({"Volume.1.Name": "v", "Volume.1.Type": "ConfigFileVolume", "Volume.1.ConfigFileVolume.DefaultMode": "0999"},
     "Volume.1.ConfigFileVolume.DefaultMode"),
    ({"DnsPolicy": "ClusterFirst"}, "DnsPolicy"),
    ({"Container.1.Port.1.Port": "80", "Container.1.Port.1.Protocol": "SCTP"}, "Container.1.Port.1.Protocol"),
    ({"Container.1.ImagePullPolicy": "Sometimes"}, "Container.1.ImagePullPolicy"),
    ({"Container.1.EnvironmentVar.1.Key": "1BAD", "Container.1.EnvironmentVar.1.Value": "x"},
     "Container.1.EnvironmentVar.1.Key"),
    ({"HostName": "Not_A_Host"}, "HostName"),  # refused by the PodSpec model, named by the group's parameter
    ({"Container.1.Name": "Upper"}, "Container.1.name"),
])
def test_what_the_emulator_cannot_run_is_refused_by_name(extra, field):
    assert f"parameter {field}" in refused(**extra)


def test_a_config_file_path_inside_its_volume_is_accepted():
    spec, content = pod_from_group(p.unflatten({
        **BASE, "Volume.1.Name": "v", "Volume.1.Type": "ConfigFileVolume",
        "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path": "a/b.txt",
        "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content": base64.b64encode(b"hi").decode()}))
    assert content == {"v": {"a/b.txt": (b"hi", 0o644)}}  # no mode given: ECI's default
    assert spec.hostname == "g1"  # no HostName: the group's name, as ECI names its host


def test_dns_policy_default_is_the_vpc_resolver():
    """ECI's Default is the VPC's resolver plus DnsConfig: the local provider's ClusterFirst."""
    spec, _ = pod_from_group(p.unflatten({**BASE, "DnsPolicy": "Default", "DnsConfig.NameServer.1": "10.0.0.2"}))
    assert spec.dnsPolicy == "ClusterFirst" and spec.dnsConfig.nameservers == ["10.0.0.2"]
    spec, _ = pod_from_group(p.unflatten(BASE))
    assert spec.dnsPolicy == "ClusterFirst" and spec.dnsConfig is None


def test_none_is_a_value_where_a_value_may_be_none():
    """The SDK's request classes send an unset optional as "None"; where "None" is a value a
    tenant may write (an env value, a file's name or content), it is kept."""
    spec, content = pod_from_group(p.unflatten({
        **BASE, "Container.1.EnvironmentVar.1.Key": "MODE", "Container.1.EnvironmentVar.1.Value": "None",
        "Volume.1.Name": "v", "Volume.1.Type": "ConfigFileVolume",
        "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path": "None",
        "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content": "None"}))
    assert spec.containers[0].env[0].value == "None"
    assert content == {"v": {"None": (base64.b64decode("None"), 0o644)}}


def test_a_long_group_name_is_cut_to_a_hostname():
    spec, _ = pod_from_group(p.unflatten({**BASE, "ContainerGroupName": "a" * 62 + "-b" + "c" * 60}))
    assert spec.hostname == "a" * 62
