"""Pod volumes and volume mounts, as far as sandboxes run them.

Field names follow core/v1. ConfigMap, Secret and downward API volumes are references:
their files reach the sandbox through the pod's volume-content Secret in the meta-cluster
(written by the virtual node, see operators/virtualnode/mapping/volumes.py), never through the
immutable SandboxPod spec, so that updates propagate as they do with a kubelet.
"""
from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .base import DNS1123_LABEL, K8sModel, cel, quantity

_MODE = dict(ge=0, le=0o777)


class KeyToPath(K8sModel):
    key: str = Field(description="Key of the ConfigMap or Secret.", min_length=1)
    path: str = Field(description="Relative path of the file.", min_length=1)
    mode: int | None = Field(default=None, description="File mode bits (0-0777).", **_MODE)


class ConfigMapVolumeSource(K8sModel):
    name: str = Field(description="Name of the ConfigMap.", min_length=1)
    items: list[KeyToPath] | None = None
    defaultMode: int | None = Field(default=None, description="File mode bits (0-0777); 0644 if unset.", **_MODE)
    optional: bool | None = None


class SecretVolumeSource(K8sModel):
    secretName: str = Field(description="Name of the Secret.", min_length=1)
    items: list[KeyToPath] | None = None
    defaultMode: int | None = Field(default=None, description="File mode bits (0-0777); 0644 if unset.", **_MODE)
    optional: bool | None = None


class DownwardAPIVolumeFile(K8sModel):
    path: str = Field(description="Relative path of the file.", min_length=1)
    fieldRef: dict | None = Field(default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    resourceFieldRef: dict | None = Field(default=None,
                                          json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    mode: int | None = Field(default=None, **_MODE)


class DownwardAPIVolumeSource(K8sModel):
    items: list[DownwardAPIVolumeFile] | None = None
    defaultMode: int | None = Field(default=None, **_MODE)


class ConfigMapProjection(K8sModel):
    name: str = Field(description="Name of the ConfigMap.", min_length=1)
    items: list[KeyToPath] | None = None
    optional: bool | None = None


class SecretProjection(K8sModel):
    name: str = Field(description="Name of the Secret.", min_length=1)
    items: list[KeyToPath] | None = None
    optional: bool | None = None


class DownwardAPIProjection(K8sModel):
    items: list[DownwardAPIVolumeFile] | None = None


class VolumeProjection(K8sModel):
    configMap: ConfigMapProjection | None = None
    secret: SecretProjection | None = None
    downwardAPI: DownwardAPIProjection | None = None


class ProjectedVolumeSource(K8sModel):
    sources: list[VolumeProjection] | None = Field(default=None, description="ConfigMaps, Secrets and downward "
                                                   "API files merged into one directory.")
    defaultMode: int | None = Field(default=None, **_MODE)


class EmptyDirVolumeSource(K8sModel):
    medium: Literal["", "Memory"] | None = Field(default=None, description='"" (disk) or "Memory" (tmpfs).')
    sizeLimit: str | int | None = quantity("Most space the volume may use.")


class NFSVolumeSource(K8sModel):
    server: str = Field(description="Host name or IP address of the NFS server.", min_length=1)
    path: str = Field(description="Path exported by the NFS server.", min_length=1)
    readOnly: bool | None = None


_ONE_SOURCE = cel(
    "[has(self.emptyDir), has(self.configMap), has(self.secret), has(self.downwardAPI), has(self.nfs),"
    " has(self.projected)].filter(x, x).size() == 1",
    "a volume needs exactly one source: emptyDir, configMap, secret, downwardAPI, projected or nfs",
)


class Volume(K8sModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore",
                              json_schema_extra={"x-kubernetes-validations": [_ONE_SOURCE]})

    name: str = Field(description="Volume name, a DNS-1123 label.", min_length=1, max_length=63,
                      pattern=DNS1123_LABEL)
    emptyDir: EmptyDirVolumeSource | None = None
    configMap: ConfigMapVolumeSource | None = None
    secret: SecretVolumeSource | None = None
    downwardAPI: DownwardAPIVolumeSource | None = None
    nfs: NFSVolumeSource | None = None
    projected: ProjectedVolumeSource | None = None

    @property
    def has_content(self) -> bool:
        """Files that come from the API (ConfigMap, Secret, downward API), not from the sandbox."""
        return bool(self.configMap or self.secret or self.downwardAPI or self.projected)


# Pods with more than a hundred volumes exist (upstream conformance mounts 150
# ClusterTrustBundles, one volume each); the uniqueness rule below is quadratic, and at this
# bound its estimated CEL cost still fits the apiserver's per-CRD budget.
MAX_VOLUMES = 256
VOLUME_SCHEMA = {"x-kubernetes-validations": [
    cel("self.all(v, self.exists_one(w, w.name == v.name))", "volume names must be unique"),
]}


class VolumeMount(K8sModel):
    name: str = Field(description="Name of the pod volume.", min_length=1)
    mountPath: str = Field(description="Absolute path inside the container.", min_length=1, pattern=r"^/")
    readOnly: bool | None = None
    subPath: str | None = Field(default=None, max_length=256, description="Path within the volume to mount instead of its root.",
                                json_schema_extra={"x-kubernetes-validations": [cel(
                                    "!self.startsWith('/') && self != '..' && !self.startsWith('../') && !self.contains('/../')"
                                    " && !self.endsWith('/..')",
                                    "subPath must be a relative path without '..'")]})
    subPathExpr: str | None = Field(
        default=None, max_length=256,
        description="subPath with $(VAR) references to the container's environment, expanded by the sandbox's "
                    "kubelet when the container starts (the result must be relative, without '..').",
        json_schema_extra={"x-kubernetes-validations": [cel(
            "!self.startsWith('/') && self != '..' && !self.startsWith('../') && !self.contains('/../')"
            " && !self.endsWith('/..')",
            "subPathExpr must be a relative path without '..'")]})
