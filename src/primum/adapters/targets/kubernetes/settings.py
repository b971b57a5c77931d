"""The estate's settings of the ``kubernetes`` target.

They live next to the target (not in ``core/model``) and import nothing of the Kubernetes client, so the
estate accepts ``type: kubernetes`` and ``primum schema estate`` shows it without loading the client.
Credentials are never in the estate: it names a kubeconfig file and a context (references), the client
reads the credentials from there when the controller starts talking to the cluster.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from primum.core.model.capabilities import TRAFFIC, Capability
from primum.core.model.estate import TargetSpec
from primum.core.model.types import Name, Port, PositiveDuration, Replicas

# A label key (optional DNS prefix, then a name) and a label value, as Kubernetes validates them.
_DNS = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
LABEL_KEY = rf"^({_DNS}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
LabelKey = Annotated[str, Field(pattern=LABEL_KEY, max_length=316)]
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE)]

# A container image without a tag or digest: the release's artifact digest pins it (``image@sha256:...``).
_IMAGE = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")


class GatewayParent(BaseModel):
    """The Gateway an ``HTTPRoute`` attaches to (Gateway API ``parentRefs``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    namespace: Name | None = None  # None: the service's namespace


class KubernetesTargetSettings(TargetSpec):
    """Deployments on a Kubernetes cluster, one per version, traffic by Service selector or Gateway API.

    ``traffic: service`` (the default) steers one Service: its selector names the version that takes all
    traffic (blue-green's switch), and a canary's weights are approximated by the ratio of the versions'
    ready replicas behind a selector that matches both. ``traffic: gateway-api`` gives each version its own
    Service and an ``HTTPRoute`` splits requests by exact ``backendRefs`` weights (the cluster must have
    the Gateway API CRDs and a Gateway, named in ``gateway``).
    """

    type: Literal["kubernetes"] = "kubernetes"
    capabilities: ClassVar[frozenset[Capability]] = TRAFFIC
    replicas: Replicas = 1
    kubeconfig: str | None = None  # a file path; None: $KUBECONFIG, then ~/.kube/config (never credentials)
    context: str | None = None  # a context of that kubeconfig; None: its current-context
    namespaces: dict[Name, Name] = Field(default_factory=dict)  # environment -> namespace (default: its name)
    image: str = Field(min_length=1, max_length=255)  # repository only; the artifact digest pins it
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)  # added to every object primum writes
    container_port: Port = 8080
    service_port: Port = 80
    health_path: str = "/healthz"  # the readiness probe's path (the kubelet's check, not primum's)
    traffic: Literal["service", "gateway-api"] = "service"
    gateway: GatewayParent | None = None  # required with traffic: gateway-api
    preview_header: str = "x-primum-preview"  # gateway-api: requests carrying it (value 1) go to the preview
    timeout: PositiveDuration = 10.0  # each API request

    @field_validator("image")
    @classmethod
    def _image_unpinned(cls, value: str) -> str:
        if "@" in value or ":" in value.rsplit("/", 1)[-1]:
            raise ValueError(f"image {value!r} has a tag or digest: give the repository only "
                             "(e.g. registry.example/team/app); the release's artifact digest pins it")
        if not _IMAGE.match(value):
            raise ValueError(f"image {value!r} is not an image repository name (lower-case, e.g. registry.example/app)")
        return value

    @model_validator(mode="after")
    def _gateway_named(self) -> KubernetesTargetSettings:
        if self.traffic == "gateway-api" and self.gateway is None:
            raise ValueError("traffic: gateway-api needs gateway: {name: GATEWAY} (the Gateway the HTTPRoute "
                             "attaches to); or use traffic: service")
        return self

    def namespace(self, env: str) -> str:
        """The namespace of ``env``: the one the estate names, else the environment's name."""
        return self.namespaces.get(env, env)
