"""Render the demo services into pinned, self-contained artifact files.

Each demo service is one stdlib-only Python file in ``primum/demo/artifacts``
whose top carries a marked block of build-time constants::

    # --- primum:build (rewritten by primum.demo.render) ---
    VERSION = "1.0.0"
    EXTRA_LATENCY_MS = 0        # injected regression: ...
    ERROR_RATE = 0.0            # injected regression: ...
    FAULT_TENANTS = ()          # if non-empty, ...
    # --- end primum:build ---

``render_artifact`` rewrites that block (and nothing else), so a version of a
service, with or without an injected regression, is a distinct file with its
own sha256 digest. Rendering is deterministic: the same inputs always give
the same bytes, hence the same digest. Rendering the defaults (version
``1.0.0``, no faults) reproduces the template byte for byte.

Two services have one more knob each, written into their block only (so the
other services' blocks are unchanged), to build deliberately broken versions
for the synthetic probes (``primum.adapters.probes``):

* fhir-gateway: ``FHIR_VERSION`` (``fhir_version``), the ``fhirVersion`` its
  CapabilityStatement declares (default ``4.0.1``, FHIR R4);
* hl7-interface: ``MLLP_MODE`` (``mllp_mode``): ``ack`` answers every MLLP
  message (the default), ``nak`` rejects every one (MSA-1 ``AR``), ``silent``
  reads them and never answers.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
from importlib import resources
from pathlib import Path

SERVICES: dict[str, str] = {
    "patient-portal": "patient_portal.py",
    "scheduling-api": "scheduling_api.py",
    "fhir-gateway": "fhir_gateway.py",
    "hl7-interface": "hl7_interface.py",
    "billing-sync": "billing_sync.py",
}

BUILD_BEGIN = "# --- primum:build (rewritten by primum.demo.render) ---\n"
BUILD_END = "# --- end primum:build ---\n"
MAX_EXTRA_LATENCY_MS = 60_000

_BLOCK = re.compile(re.escape(BUILD_BEGIN) + r".*?" + re.escape(BUILD_END), re.DOTALL)
# Versions end up in file names and in Python/HTTP header literals: keep them plain.
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")
# Tenants are compared with the x-tenant-id header value.
_TENANT = re.compile(r"[0-9A-Za-z][0-9A-Za-z._:@-]{0,127}")
_COMMENTS = {
    "EXTRA_LATENCY_MS": "injected regression: added latency on every non-health request",
    "ERROR_RATE": "injected regression: fraction of non-health requests answered 500",
    "FAULT_TENANTS": "if non-empty, the faults above only hit these tenants",
    "FHIR_VERSION": "fhirVersion of the CapabilityStatement (4.0.1: FHIR R4)",
    "MLLP_MODE": "MLLP answers: ack (normal), nak (reject all: AR), silent (never answer)",
}
DEFAULT_FHIR_VERSION = "4.0.1"
DEFAULT_MLLP_MODE = "ack"
MLLP_MODES = ("ack", "nak", "silent")
# The service-specific knobs: only these services carry them in their build block.
SERVICE_KNOBS: dict[str, tuple[str, ...]] = {
    "fhir-gateway": ("FHIR_VERSION",),
    "hl7-interface": ("MLLP_MODE",),
}
# FHIR versions as FHIR writes them: 4.0.1, 3.0.2, 5.0.0, 6.0.0-ballot2...
_FHIR_VERSION = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?:-[0-9A-Za-z.]{1,32})?")


COMMON_PLACEHOLDER = "# --- primum:common: inserted here from common.pyfrag by primum.demo.render ---\n"


def template_source(service: str) -> str:
    """The unrendered source of one demo service: its template file with the shared
    server code (``common.pyfrag``) inserted, so every artifact is one self-contained file
    while the shared code is written once."""
    if service not in SERVICES:
        known = ", ".join(sorted(SERVICES))
        raise ValueError(f"unknown demo service {service!r} (known: {known})")
    folder = resources.files("primum.demo").joinpath("artifacts")
    template = folder.joinpath(SERVICES[service]).read_text(encoding="utf-8")
    if template.count(COMMON_PLACEHOLDER) != 1:
        raise ValueError(f"template of {service!r} must contain the primum:common placeholder exactly once")
    return template.replace(COMMON_PLACEHOLDER, folder.joinpath("common.pyfrag").read_text(encoding="utf-8"))


def render_artifact(
    service: str,
    version: str,
    *,
    extra_latency_ms: int = 0,
    error_rate: float = 0.0,
    fault_tenants: tuple[str, ...] = (),
    fhir_version: str = DEFAULT_FHIR_VERSION,
    mllp_mode: str = DEFAULT_MLLP_MODE,
) -> str:
    """Source of ``service`` at ``version``, optionally with an injected regression.

    ``extra_latency_ms`` and ``error_rate`` hit every non-health request (never
    ``/healthz``); with ``fault_tenants`` only requests of those tenants
    (``x-tenant-id``). Tenants are deduplicated and sorted, so the order they
    are given in does not change the digest. ``fhir_version`` (fhir-gateway
    only) and ``mllp_mode`` (hl7-interface only: ``ack``, ``nak`` or
    ``silent``) build deliberately broken versions; a non-default value for
    another service is an error. Raises ``ValueError`` on an unknown service
    or a bad value.
    """
    source = template_source(service)
    knobs = _service_knobs(service, fhir_version, mllp_mode)
    block = _build_block(version, extra_latency_ms, error_rate, fault_tenants, knobs)
    if len(_BLOCK.findall(source)) != 1:
        raise ValueError(f"template of {service!r} must contain exactly one primum:build block")
    return _BLOCK.sub(lambda _: block, source)


def write_artifact(
    dest_dir: Path,
    service: str,
    version: str,
    *,
    extra_latency_ms: int = 0,
    error_rate: float = 0.0,
    fault_tenants: tuple[str, ...] = (),
    fhir_version: str = DEFAULT_FHIR_VERSION,
    mllp_mode: str = DEFAULT_MLLP_MODE,
) -> tuple[Path, str]:
    """Write ``<dest_dir>/<service>-<version>.py``; return (path, ``"sha256:<hex>"``).

    The file is replaced atomically, so a reader never sees a partial artifact.
    """
    data = render_artifact(
        service,
        version,
        extra_latency_ms=extra_latency_ms,
        error_rate=error_rate,
        fault_tenants=fault_tenants,
        fhir_version=fhir_version,
        mllp_mode=mllp_mode,
    ).encode("utf-8")
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"{service}-{version}.py"
    handle, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as tmp:
            tmp.write(data)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path, digest_of(data)


def digest_of(data: bytes) -> str:
    """The pinned form of an artifact's digest: ``"sha256:<64 hex>"``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _service_knobs(service: str, fhir_version: str, mllp_mode: str) -> dict[str, str]:
    """The service-specific constants of ``service``'s build block, as Python literals."""
    if not isinstance(fhir_version, str) or not _FHIR_VERSION.fullmatch(fhir_version):
        raise ValueError(f"fhir_version must look like 4.0.1 (major.minor.patch[-label]), got {fhir_version!r}")
    if mllp_mode not in MLLP_MODES:
        raise ValueError(f"mllp_mode must be one of {', '.join(MLLP_MODES)}, got {mllp_mode!r}")
    given = {"FHIR_VERSION": fhir_version != DEFAULT_FHIR_VERSION, "MLLP_MODE": mllp_mode != DEFAULT_MLLP_MODE}
    own = SERVICE_KNOBS.get(service, ())
    for name, changed in given.items():
        if changed and name not in own:
            owners = [svc for svc, names in SERVICE_KNOBS.items() if name in names]
            raise ValueError(f"{name.lower()} applies only to {', '.join(owners)}, not to {service!r}")
    values = {"FHIR_VERSION": f'"{fhir_version}"', "MLLP_MODE": f'"{mllp_mode}"'}
    return {name: values[name] for name in own}


def _build_block(
    version: str,
    extra_latency_ms: int,
    error_rate: float,
    fault_tenants: tuple[str, ...],
    knobs: dict[str, str] | None = None,
) -> str:
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise ValueError(
            f"bad version {version!r}: use 1-64 characters of letters, digits and . + _ - "
            "(starting with a letter or digit)"
        )
    if (
        isinstance(extra_latency_ms, bool)
        or not isinstance(extra_latency_ms, int)
        or not 0 <= extra_latency_ms <= MAX_EXTRA_LATENCY_MS
    ):
        raise ValueError(
            f"extra_latency_ms must be an integer from 0 to {MAX_EXTRA_LATENCY_MS}, "
            f"got {extra_latency_ms!r}"
        )
    if (
        isinstance(error_rate, bool)
        or not isinstance(error_rate, int | float)
        or not math.isfinite(error_rate)
        or not 0.0 <= error_rate <= 1.0
    ):
        raise ValueError(f"error_rate must be a number from 0.0 to 1.0, got {error_rate!r}")
    if isinstance(fault_tenants, str) or not isinstance(fault_tenants, tuple | list):
        raise ValueError(f"fault_tenants must be a tuple of tenant ids, got {fault_tenants!r}")
    for tenant in fault_tenants:
        if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
            raise ValueError(
                f"bad tenant {tenant!r} in fault_tenants: use 1-128 characters of letters, "
                "digits and . _ : @ - (starting with a letter or digit)"
            )
    tenants = sorted(set(fault_tenants))
    quoted = [f'"{tenant}"' for tenant in tenants]
    tenants_literal = "(" + ", ".join(quoted) + ("," if len(quoted) == 1 else "") + ")"
    values = {
        "EXTRA_LATENCY_MS": str(extra_latency_ms),
        "ERROR_RATE": repr(float(error_rate)),
        "FAULT_TENANTS": tenants_literal,
        **(knobs or {}),
    }
    lines = [BUILD_BEGIN, f'VERSION = "{version}"\n']
    for name, value in values.items():
        lines.append(f"{name} = {value}".ljust(26) + f"  # {_COMMENTS[name]}\n")
    lines.append(BUILD_END)
    return "".join(lines)
