"""The routing configuration of one router: validation and the choice of a version, without I/O.

A router (``router.py``, its own process) holds one :class:`RouteConfig` at a
time and swaps it whole on every accepted push. This module is pure -- no
aiohttp, no socket, no event loop -- so the validation and choice rules the
router applies can be read, imported and tested without the server around them.

Version choice for a proxied request (:meth:`RouteConfig.choose`), in order:

1. ``x-primum-preview: 1`` and a configured ``preview`` -> the preview version
   (blue-green verification traffic, whatever the weights).
2. ``affinity == "tenant"`` and the tenant header present -> deterministic.
   ``salt`` is the sorted keys of the versions with weight > 0 joined by ``","``.
   A *known* tenant (listed in ``tenants``) is ranked among the known tenants
   by ``sha256(salt + "|" + tenant)`` (hex digest, ascending) and its point is
   ``(rank + 0.5) / len(tenants)``; an *unknown* tenant's point is the first 8
   bytes of that digest as a fraction of 2**64. The versions with weight > 0,
   sorted by key, are laid out on [0, 1) by cumulative ``weight / 100`` and
   the first one whose cumulative share exceeds the point wins.

   Why: a tenant (a clinic, a ward) stays on one version while the weights
   are unchanged, which matters when a canary changes a workflow, and known
   tenants are spread as evenly as the weights allow instead of clumping by
   hash luck. The spread is quantised, though: with ``n`` known tenants a
   version gets exactly the tenants whose points ``(k + 0.5) / n`` fall in its
   interval, so small weights may get *no* known tenant. With 3 tenants
   (points 1/6, 1/2, 5/6) a version needs a weight above ~16.7 % to be sure
   of one; at 20 % a two-version canary gets exactly one tenant, at 10 % it
   gets none (it still gets untenanted and unknown-tenant traffic). That is
   intended: it is the honest consequence of routing whole tenants. While
   the set of versions taking traffic is unchanged (so the salt is too),
   growing one of two versions' weight only ever moves tenants *onto* it.
3. Otherwise a weighted random choice.

Then the router picks an instance of the chosen version round-robin
(:meth:`RouteConfig.next_instance_index`).
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from random import random
from typing import Any
from urllib.parse import urlsplit

PREVIEW_HEADER = "x-primum-preview"
DEFAULT_TENANT_HEADER = "x-tenant-id"
NO_VERSION = "-"  # version label when no version could be chosen
NO_TENANT = "-"  # tenant label when the tenant header is absent
OTHER_TENANT = "other"  # tenant label for a tenant not in the configured list
UNKNOWN_TENANT_CACHE_MAX = 4096
MAX_FENCE = 2**53 - 1  # the largest integer JSON carries exactly; see fencing.py

_TOKEN_RE = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
_HEADER_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,255}$")
_TOP_LEVEL_FIELDS = frozenset(
    {"fence", "versions", "preview", "affinity", "tenant_header", "tenants", "health_path", "started_at"}
)
_VERSION_FIELDS = frozenset({"label", "weight", "instances"})


class ConfigError(ValueError):
    """A pushed configuration is invalid; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class VersionConfig:
    """One routable version: its weight (percent) and its instances' base URLs."""

    key: str
    label: str
    weight: int
    instances: tuple[str, ...]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_instance(field: str, value: object) -> str:
    """Accept ``http://host[:port]`` (optionally a trailing ``/``); return it without it."""
    if not isinstance(value, str) or not value:
        raise ConfigError(field, "must be a non-empty string URL")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(field, f"not a valid URL: {value!r} ({exc})") from None
    if parts.scheme != "http":
        raise ConfigError(field, f"must be an http:// URL, got {value!r}")
    if not parts.hostname:
        raise ConfigError(field, f"has no host: {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ConfigError(field, f"must be just http://host[:port], got {value!r}")
    if port is not None and not 0 < port < 65536:
        raise ConfigError(field, f"bad port in {value!r}")
    return value.rstrip("/")


class RouteConfig:
    """An immutable, validated routing configuration and its precomputed tables.

    Everything a request needs is computed here, once per push, so the hot
    path is a dict lookup or a bisect: cumulative shares for the weighted
    choices, and the version of every known tenant. Unknown tenants are
    hashed once and cached (bounded) for the life of this configuration.
    The router swaps whole ``RouteConfig`` objects, so a request in flight
    keeps using the configuration it started with.
    """

    __slots__ = (
        "_cum_keys",
        "_cum_shares",
        "_rr",
        "_unknown_cache",
        "affinity",
        "affinity_tenant",
        "fence",
        "health_path",
        "instances",
        "known_tenant_versions",
        "preview",
        "salt",
        "tenant_header",
        "tenant_set",
        "tenants",
        "versions",
    )

    def __init__(
        self,
        *,
        fence: int,
        versions: Mapping[str, VersionConfig],
        preview: str | None,
        affinity: str,
        tenant_header: str,
        tenants: tuple[str, ...],
        health_path: str | None = None,
    ) -> None:
        self.fence = fence
        self.health_path = health_path
        self.versions = dict(versions)
        self.preview = preview
        self.affinity = affinity
        self.affinity_tenant = affinity == "tenant"
        self.tenant_header = tenant_header
        self.tenants = tenants
        self.tenant_set = frozenset(tenants)
        self.instances = {k: v.instances for k, v in self.versions.items()}
        self._rr = dict.fromkeys(self.versions, 0)

        active = sorted(k for k, v in self.versions.items() if v.weight > 0)
        self.salt = ",".join(active)
        cumulative = 0
        self._cum_keys: list[str] = []
        self._cum_shares: list[float] = []
        for key in active:
            cumulative += self.versions[key].weight
            self._cum_keys.append(key)
            self._cum_shares.append(cumulative / 100)

        ranked = sorted(tenants, key=lambda t: self._digest(t).hex())
        count = len(ranked)
        self.known_tenant_versions: dict[str, str | None] = {
            tenant: self._at((rank + 0.5) / count) for rank, tenant in enumerate(ranked)
        }
        self._unknown_cache: dict[str, str | None] = {}

    # ------------------------------------------------------------ building

    @classmethod
    def empty(cls) -> RouteConfig:
        """The configuration before any push: no versions, so every request gets 503."""
        return cls(
            fence=0,
            versions={},
            preview=None,
            affinity="tenant",
            tenant_header=DEFAULT_TENANT_HEADER,
            tenants=(),
        )

    @classmethod
    def from_json(cls, body: object) -> RouteConfig:
        """Validate a pushed body strictly; raise ``ConfigError`` naming the field."""
        if not isinstance(body, dict):
            raise ConfigError("body", "must be a JSON object")
        unknown = sorted(set(body) - _TOP_LEVEL_FIELDS)
        if unknown:
            raise ConfigError(unknown[0], "unknown field")

        if "fence" not in body:
            raise ConfigError("fence", "is required")
        fence = body["fence"]
        if not _is_int(fence) or fence < 0:
            raise ConfigError("fence", "must be a non-negative integer")
        if fence > MAX_FENCE:
            raise ConfigError("fence", f"{fence} is above the largest fence a lease can issue ({MAX_FENCE})")

        if "versions" not in body:
            raise ConfigError("versions", "is required")
        raw_versions = body["versions"]
        if not isinstance(raw_versions, dict):
            raise ConfigError("versions", "must be an object mapping version key to version")
        versions: dict[str, VersionConfig] = {}
        for key, spec in raw_versions.items():
            where = f"versions.{key}"
            if not _TOKEN_RE.match(key) or key == NO_VERSION:
                raise ConfigError(where, "version key must match [A-Za-z0-9._~-]{1,64}")
            if not isinstance(spec, dict):
                raise ConfigError(where, "must be an object")
            extra = sorted(set(spec) - _VERSION_FIELDS)
            if extra:
                raise ConfigError(f"{where}.{extra[0]}", "unknown field")
            label = spec.get("label", "")
            if not isinstance(label, str):
                raise ConfigError(f"{where}.label", "must be a string")
            if "weight" not in spec:
                raise ConfigError(f"{where}.weight", "is required")
            weight = spec["weight"]
            if not _is_int(weight) or not 0 <= weight <= 100:
                raise ConfigError(f"{where}.weight", "must be an integer 0..100")
            if "instances" not in spec:
                raise ConfigError(f"{where}.instances", "is required")
            raw_instances = spec["instances"]
            if not isinstance(raw_instances, list):
                raise ConfigError(f"{where}.instances", "must be a list of http URLs")
            instances = tuple(
                _validate_instance(f"{where}.instances[{i}]", url)
                for i, url in enumerate(raw_instances)
            )
            versions[key] = VersionConfig(key, label, weight, instances)
        total = sum(v.weight for v in versions.values())
        if total not in (0, 100):
            raise ConfigError("versions", f"weights must sum to 100 (or all be 0), got {total}")

        preview = body.get("preview")
        if preview is not None and (not isinstance(preview, str) or preview not in versions):
            raise ConfigError("preview", f"must be null or a key of versions, got {preview!r}")

        affinity = body.get("affinity", "tenant")
        if affinity not in ("tenant", "none"):
            raise ConfigError("affinity", f"must be 'tenant' or 'none', got {affinity!r}")

        tenant_header = body.get("tenant_header", DEFAULT_TENANT_HEADER)
        if not isinstance(tenant_header, str) or not _HEADER_RE.match(tenant_header):
            raise ConfigError("tenant_header", "must be a valid HTTP header name")

        raw_tenants = body.get("tenants", [])
        if not isinstance(raw_tenants, list):
            raise ConfigError("tenants", "must be a list of strings")
        tenants: list[str] = []
        for i, tenant in enumerate(raw_tenants):
            if not isinstance(tenant, str) or not tenant:
                raise ConfigError(f"tenants[{i}]", "must be a non-empty string")
            if tenant in (NO_TENANT, OTHER_TENANT):
                raise ConfigError(f"tenants[{i}]", f"{tenant!r} is a reserved metrics label")
            if tenant not in tenants:  # a set in meaning; duplicates would skew the ranks
                tenants.append(tenant)

        health_path = body.get("health_path")
        if health_path is not None and (not isinstance(health_path, str) or not _PATH_RE.match(health_path)):
            raise ConfigError("health_path", f"must be null or an absolute URL path, got {health_path!r}")

        return cls(
            fence=fence,
            versions=versions,
            preview=preview,
            affinity=affinity,
            tenant_header=tenant_header,
            tenants=tuple(tenants),
            health_path=health_path,
        )

    def to_json(self) -> dict[str, Any]:
        """The configuration in the same shape as it is pushed."""
        return {
            "fence": self.fence,
            "versions": {
                key: {"label": v.label, "weight": v.weight, "instances": list(v.instances)}
                for key, v in self.versions.items()
            },
            "preview": self.preview,
            "affinity": self.affinity,
            "tenant_header": self.tenant_header,
            "tenants": list(self.tenants),
            "health_path": self.health_path,
        }

    # ------------------------------------------------------------ failover

    def failover(self, down: frozenset[str]) -> RouteConfig:
        """The configuration the router applies while the instances ``down`` (URLs) do not answer.

        Down instances leave their version's list. A version with weight whose
        instances are all down (or that has none) is *failed over*: its weight
        goes to the versions with weight that still have an instance, in
        proportion to their weights (largest remainder, so the weights still
        sum to 100); when it recovers, the next call gives it back. If no
        version with weight is left, nothing moves: there is nowhere healthy to
        send the traffic, and the requests fail visibly. The preview is never
        moved: verification traffic must reach the version under test or fail.
        """
        instances = {k: tuple(u for u in v.instances if u not in down) for k, v in self.versions.items()}
        weighted = {k: v.weight for k, v in self.versions.items() if v.weight > 0}
        alive = {k: w for k, w in weighted.items() if instances[k]}
        weights = {k: v.weight for k, v in self.versions.items()}
        if alive and len(alive) < len(weighted):
            total = sum(alive.values())
            exact = {k: w * 100 / total for k, w in alive.items()}
            weights = {k: 0 for k in self.versions} | {k: int(x) for k, x in exact.items()}
            rest = 100 - sum(weights.values())
            for k in sorted(alive, key=lambda k: (-(exact[k] - int(exact[k])), k))[:rest]:
                weights[k] += 1
        versions = {
            # a version whose instances are all down keeps them: it has lost its weight, unless
            # nothing is left, and then trying them is better than refusing outright
            k: VersionConfig(k, v.label, weights[k], instances[k] or v.instances)
            for k, v in self.versions.items()
        }
        return RouteConfig(
            fence=self.fence,
            versions=versions,
            preview=self.preview,
            affinity=self.affinity,
            tenant_header=self.tenant_header,
            tenants=self.tenants,
            health_path=self.health_path,
        )

    def failed_over(self, effective: RouteConfig) -> list[str]:
        """Keys of the versions with weight here that take no traffic in ``effective``."""
        return sorted(
            k for k, v in self.versions.items()
            if v.weight > 0 and k in effective.versions and effective.versions[k].weight == 0
        )

    # ------------------------------------------------------------ choosing

    def _digest(self, tenant: str) -> bytes:
        return hashlib.sha256(f"{self.salt}|{tenant}".encode()).digest()

    def _at(self, point: float) -> str | None:
        """The version whose cumulative share first exceeds ``point`` in [0, 1)."""
        index = bisect.bisect_right(self._cum_shares, point)
        if index >= len(self._cum_keys):
            return None
        return self._cum_keys[index]

    def for_tenant(self, tenant: str) -> str | None:
        """Deterministic choice for a tenant (known tenants precomputed, others cached)."""
        known = self.known_tenant_versions
        if tenant in known:
            return known[tenant]
        cache = self._unknown_cache
        if tenant in cache:
            return cache[tenant]
        point = int.from_bytes(self._digest(tenant)[:8], "big") / 2**64
        choice = self._at(point)
        if len(cache) >= UNKNOWN_TENANT_CACHE_MAX:
            cache.clear()
        cache[tenant] = choice
        return choice

    def weighted_random(self) -> str | None:
        """A version drawn with probability weight / 100 (None: nothing takes traffic)."""
        if not self._cum_keys:
            return None
        return self._at(random())

    def choose(self, headers: Mapping[str, str]) -> tuple[str | None, str]:
        """The version for a request with these headers, and its tenant's metrics label.

        The order is the module docstring's (preview, tenant affinity,
        weighted random); the version is None when nothing takes traffic.
        ``headers`` must look names up case-insensitively (aiohttp's do).
        """
        tenant = headers.get(self.tenant_header)
        if not tenant:
            tenant_label = NO_TENANT
        elif tenant in self.tenant_set:
            tenant_label = tenant
        else:
            tenant_label = OTHER_TENANT
        key: str | None
        if self.preview is not None and headers.get(PREVIEW_HEADER) == "1":
            key = self.preview
        elif tenant and self.affinity_tenant:
            key = self.for_tenant(tenant)
        else:
            key = self.weighted_random()
        return key, tenant_label

    def next_instance_index(self, key: str) -> int:
        """Round-robin position for ``key`` (per configuration; resets on a push)."""
        index = self._rr[key]
        self._rr[key] = index + 1
        return index
