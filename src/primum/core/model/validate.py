"""Load and validate estate and release files into models, or fail with clear problems.

Every problem names the file, the line, the field path and the fix; the CLI
prints them and exits 2. Nothing is half-loaded: either the whole file is
valid or an ``InputError`` lists everything wrong with it.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from primum.core.model.actions import ServiceRuntimeSpec, TrafficSpec, VersionRef
from primum.core.model.analysis import MllpProbe
from primum.core.model.capabilities import missing_capability, strategies_for
from primum.core.model.errors import InputError, Problem
from primum.core.model.estate import CanaryStrategy, Estate, LocalTargetSettings, ProbeStep, RollingStrategy, Service
from primum.core.model.release import Release, canonical_digest
from primum.core.model.types import EnvValue
from primum.core.model.yamlfile import Loc, LocatedDocument, dotted, load_yaml, parse_yaml
from primum.core.sensitive.secrets import ENV_REFERENCE, is_reference, literal_secret

# Discriminator tags pydantic puts into error locations; they are not YAML keys.
# Tags pydantic puts into an error's location inside a discriminated union (strategies and their steps);
# plug-in kinds (targets, sources, probes) validate through core.model.plugins and add none.
_UNION_TAGS = {"canary", "blue_green", "rolling", "set_weight", "pause", "analysis", "probe"}


_PATTERN_FIX = {
    "id": "use letters, digits, '.', '_' and '-' (at most 100 characters)",
    "source_commit": "give the full or abbreviated git commit hash (7 to 64 lowercase hex digits)",
}


def _clean_loc(doc: LocatedDocument, loc: tuple[Any, ...]) -> Loc:
    out: list[str | int] = []
    for part in loc:
        if part in _UNION_TAGS and (*out, part) not in doc.lines:
            continue
        out.append(part)
    return tuple(out)


def problems_from_validation(doc: LocatedDocument, exc: ValidationError, schema: str) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = _clean_loc(doc, err["loc"])
        kind = err["type"]
        name = loc[-1] if loc else ""
        if kind == "extra_forbidden":
            message = f"unknown field '{name}'"
            fix = f"remove it or correct its spelling (`primum schema {schema}` lists the fields)"
        elif kind == "missing":
            message = "required field is missing"
            fix = f"add `{name}`"
        elif kind in ("literal_error", "enum"):
            expected = (err.get("ctx") or {}).get("expected", "")
            message = f"{err['input']!r} is not allowed"
            fix = f"use one of: {expected}"
        elif kind == "union_tag_invalid" and "what" in (err.get("ctx") or {}):  # a plug-in kind (core.model.plugins)
            ctx = err["ctx"]
            loc = (*loc, "type") if (*loc, "type") in doc.lines else loc
            message = f"{ctx['tag']} is not a known {ctx['what']}"
            fix = f"use one of: {ctx['expected_tags']}"
        elif kind == "string_pattern_mismatch" and name == "digest":
            message = f"artifact is not pinned by digest: {err['input']!r}"
            fix = "pin it as 'sha256:' followed by 64 lowercase hex digits (e.g. from `sha256sum FILE`)"
        elif kind == "string_pattern_mismatch":
            message = f"{err['input']!r} does not match {err['ctx']['pattern']}"
            fix = _PATTERN_FIX.get(str(name), "use lowercase letters, digits and '-' (a DNS-style name)")
        elif kind == "out_of_range":  # a constrained number of core.model.types: the message names the range
            message = err["msg"]
            fix = "give a value in that range"
        else:
            message = err["msg"].removeprefix("Value error, ")
            fix = f"correct the value (see `primum schema {schema}`)"
        problems.append(doc.problem(loc, message, fix))
    return problems


# ----------------------------------------------------------------- estate


def shipped_templates() -> dict[str, Any]:
    """The golden-path templates shipped with primum (a fresh copy: callers add the estate's own)."""
    return copy.deepcopy(_shipped_templates())


@functools.cache
def _shipped_templates() -> dict[str, Any]:
    text = resources.files("primum.core.model").joinpath("templates.yaml").read_text(encoding="utf-8")
    data = parse_yaml(text, "templates.yaml").data  # the same safe loader as every estate (and libyaml's speed)
    assert isinstance(data, dict)
    return data


def _merge(base: Any, override: Any) -> Any:
    """Deep merge: mappings merge key by key; anything else is replaced.

    A mapping whose ``type`` changes (a strategy or a target of another kind)
    replaces the base entirely, since the base's fields belong to the other kind.
    """
    if isinstance(base, dict) and isinstance(override, dict):
        if "type" in base and "type" in override and base["type"] != override["type"]:
            return copy.deepcopy(override)
        out = copy.deepcopy(base)
        for key, value in override.items():
            out[key] = _merge(out[key], value) if key in out else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def _resolve_templates(doc: LocatedDocument) -> dict[str, Any]:
    """Apply templates to services; return the estate data ready for pydantic."""
    data = doc.data
    problems: list[Problem] = []
    if not isinstance(data, dict):
        raise InputError([doc.problem((), "an estate must be a mapping", "see `primum init`")])
    templates = shipped_templates()
    own = data.get("templates") or {}
    if not isinstance(own, dict):
        raise InputError([doc.problem(("templates",), "templates must be a mapping of name to settings",
                                      "write `templates: {name: {...}}`")])
    templates.update(own)

    def resolve(name: str, loc: Loc, chain: tuple[str, ...]) -> dict[str, Any] | None:
        if name in chain:
            problems.append(doc.problem(loc, f"template cycle: {' -> '.join((*chain, name))}",
                                        "remove one `extends`"))
            return None
        if name not in templates:
            problems.append(doc.problem(loc, f"unknown template '{name}'",
                                        f"use one of: {', '.join(sorted(templates))}"))
            return None
        body = templates[name]
        if not isinstance(body, dict):
            problems.append(doc.problem(("templates", name), "a template must be a mapping",
                                        "write the template's default fields"))
            return None
        body = dict(body)
        parent = body.pop("extends", None)
        if parent is None:
            return body
        base = resolve(str(parent), ("templates", name, "extends"), (*chain, name))
        return None if base is None else _merge(base, body)

    services = data.get("services")
    out = {k: v for k, v in data.items() if k != "templates"}
    if isinstance(services, dict):
        merged: dict[str, Any] = {}
        for svc_name, body in services.items():
            if isinstance(body, dict) and body.get("template") is not None:
                base = resolve(str(body["template"]), ("services", svc_name, "template"), ())
                merged[svc_name] = body if base is None else _merge(base, body)
            else:
                merged[svc_name] = body
        out["services"] = merged
    if problems:
        raise InputError(problems)
    return out


def _check_estate(doc: LocatedDocument, estate: Estate) -> list[Problem]:
    problems: list[Problem] = []
    envs = set(estate.environment_names())
    for i, declared in enumerate(estate.environments):
        if declared.name in estate.environment_names()[:i]:
            problems.append(doc.problem(("environments", i, "name"), f"environment '{declared.name}' is listed twice",
                                        "environment names must be unique; rename or remove one"))
    tenant_ids = [t.id for t in estate.tenants]
    for i, tid in enumerate(tenant_ids):
        if tid in tenant_ids[:i]:
            problems.append(doc.problem(("tenants", i, "id"), f"duplicate tenant '{tid}'",
                                        "give every tenant a unique id"))
    ports: dict[int, str] = {}
    for name, svc in estate.services.items():
        base: Loc = ("services", name)
        for i, dep in enumerate(svc.depends_on):
            if dep == name:
                problems.append(doc.problem((*base, "depends_on", i), "a service cannot depend on itself",
                                            "remove it from depends_on"))
            elif dep not in estate.services:
                problems.append(doc.problem((*base, "depends_on", i), f"unknown service '{dep}'",
                                            f"use one of: {', '.join(sorted(estate.services))}"))
        if isinstance(svc.target, LocalTargetSettings):
            # router ports and MLLP listener ports share one namespace: no two may collide
            for field, what, suffix in (("ports", "router", ""), ("mllp_ports", "listener", " (MLLP)")):
                for env, port in getattr(svc.target, field).items():
                    loc = (*base, "target", field, env)
                    if env not in envs:
                        problems.append(doc.problem(loc, f"unknown environment '{env}'",
                                                    f"use one of: {', '.join(estate.environment_names())}"))
                    if port in ports:
                        problems.append(doc.problem(loc, f"port {port} is already used by {ports[port]}",
                                                    f"give every {what} its own port"))
                    ports[port] = f"{name}/{env}{suffix}"
            problems += _check_env(doc, (*base, "target", "env"), svc.target.env)
            tokens = [*svc.target.command, *(v for v in svc.target.env.values() if isinstance(v, str))]
            if not any("{artifact}" in tok or "{unpacked}" in tok for tok in tokens):
                problems.append(doc.problem((*base, "target", "command"),
                                            "neither the command nor its env mentions {artifact} or {unpacked}",
                                            "include {artifact} (or {unpacked} for an archive) so the pinned "
                                            "artifact is what runs"))
            if any("{mllp_port}" in tok for tok in svc.target.command):
                missing = sorted(envs - set(svc.target.mllp_ports))
                if missing:
                    problems.append(doc.problem((*base, "target", "command"),
                                                f"the command uses {{mllp_port}} but target.mllp_ports has no port "
                                                f"for {', '.join(missing)}",
                                                "add target.mllp_ports with a port per environment"))
            if not any("{port}" in tok for tok in svc.target.command):
                problems.append(doc.problem((*base, "target", "command"),
                                            "the command never mentions {port}",
                                            "include {port} so the service listens where primum routes"))
        problems += _check_probes(doc, base, svc)
        problems += _check_headers(doc, base, svc.model_dump(mode="json", by_alias=True))
        problems += _check_capability(doc, (*base, "strategy", "type"), svc, svc.strategy.type)
        replicas = svc.target.replicas
        if isinstance(svc.strategy, RollingStrategy) and svc.strategy.max_unavailable >= replicas:
            problems.append(doc.problem(
                (*base, "strategy", "max_unavailable"),
                f"max_unavailable {svc.strategy.max_unavailable} would take all {replicas} "
                "instance(s) out of service at once",
                "raise target.replicas or lower max_unavailable, or use blue_green"))
        if svc.traffic and svc.traffic.environments:
            for i, env in enumerate(svc.traffic.environments):
                if env not in envs:
                    problems.append(doc.problem((*base, "traffic", "environments", i),
                                                f"unknown environment '{env}'",
                                                f"use one of: {', '.join(estate.environment_names())}"))
    cycle = find_cycle({n: list(s.depends_on) for n, s in estate.services.items()})
    if cycle:
        problems.append(doc.problem(("services", cycle[0], "depends_on"),
                                    f"dependency cycle: {' -> '.join(cycle)}",
                                    "remove one of these dependencies"))
    return problems


_ENV_FIX = ("keep the secret out of the estate: write {from_env: NAME} (a variable of the controller's environment), "
            "{from_file: /absolute/path} (a file the controller reads) or \"${NAME}\" instead of the value")


def _check_capability(doc: LocatedDocument, loc: Loc, svc: Service, strategy: str) -> list[Problem]:
    """A strategy the service's target cannot carry out (``core/model/capabilities.py``)."""
    capabilities = type(svc.target).capabilities
    need = missing_capability(strategy, capabilities)
    if need is None:
        return []
    can, has = strategies_for(capabilities), ", ".join(sorted(c.value for c in capabilities)) or "nothing"
    return [doc.problem(loc, f"strategy {strategy} needs a target that can do {need.value}; target "
                             f"{svc.target.type} can do {has}",
                        f"use a strategy target {svc.target.type} supports ({', '.join(can) or 'none'}), "
                        "or a target that can do " + need.value)]


def _check_env(doc: LocatedDocument, base: Loc, env: dict[str, EnvValue]) -> list[Problem]:
    """A literal environment value that looks like a secret is refused: the estate is stored and signed into
    evidence kept for years, so it may hold where a secret is, never the secret (``core/sensitive/secrets.py``
    says what looks like one)."""
    problems = []
    for name, value in env.items():
        if not isinstance(value, str) or is_reference(value):
            continue
        literal = ENV_REFERENCE.sub("", value)  # "postgres://app:${DB_PASSWORD}@db/app" keeps no secret
        if not literal.strip():
            continue
        reason = literal_secret(name, literal, by_name=literal == value)
        if reason is not None:
            problems.append(doc.problem((*base, name), f"a literal secret: {reason}", _ENV_FIX))
    return problems


_HEADER_FIX = ("keep the secret out of the estate: write the header as \"Bearer ${NAME}\" (NAME a variable of the "
               "controller's environment, read when the request is sent)")


def _check_headers(doc: LocatedDocument, loc: Loc, value: Any) -> list[Problem]:
    """HTTP headers of metric sources and probes, wherever they sit in a service: a literal secret is refused,
    as in ``target.env``; ``${NAME}`` references are read when the request is sent."""
    problems: list[Problem] = []
    if isinstance(value, list):
        for i, item in enumerate(value):
            problems += _check_headers(doc, (*loc, i), item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "headers" and isinstance(item, dict):
                for name, text in item.items():
                    if not isinstance(text, str) or is_reference(text):  # "Bearer ${PROM_TOKEN}"
                        continue
                    literal = ENV_REFERENCE.sub("", text)
                    reason = literal_secret(name, literal, by_name=literal == text) if literal.strip() else None
                    if reason is not None:
                        problems.append(doc.problem((*loc, key, name), f"a literal secret: {reason}", _HEADER_FIX))
            else:
                problems += _check_headers(doc, (*loc, key), item)
    return problems


def _check_probes(doc: LocatedDocument, base: Loc, svc: Service) -> list[Problem]:
    problems: list[Problem] = []
    names = [g.name for g in svc.probes]
    for i, name in enumerate(names):
        if name in names[:i]:
            problems.append(doc.problem((*base, "probes", i, "name"), f"probe gate '{name}' is defined twice",
                                        "give every probe gate of a service its own name"))
        gate = svc.probes[i]
        if isinstance(gate.probe, MllpProbe) and gate.probe.port is None and (
                not isinstance(svc.target, LocalTargetSettings) or not svc.target.mllp_ports):
            problems.append(doc.problem((*base, "probes", i, "probe", "port"),
                                        "an MLLP probe needs a port",
                                        "set probe.port, or target.mllp_ports per environment"))
    if isinstance(svc.strategy, CanaryStrategy):
        for i, step in enumerate(svc.strategy.steps):
            if isinstance(step, ProbeStep):
                for j, gate_name in enumerate(step.probe):
                    if gate_name not in names:
                        problems.append(doc.problem(
                            (*base, "strategy", "steps", i, "probe", j), f"unknown probe gate '{gate_name}'",
                            f"define it under probes: (defined: {', '.join(names) or 'none'})"))
    return problems


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a path that starts and ends at the same node, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, []):
            if dep not in graph:
                continue
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _validate(doc: LocatedDocument, model: type[BaseModel], data: Any, schema: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(problems_from_validation(doc, exc, schema)) from None


def estate_from_document(doc: LocatedDocument) -> Estate:
    data = _resolve_templates(doc)
    estate: Estate = _validate(doc, Estate, data, "estate")
    problems = _check_estate(doc, estate)
    if problems:
        raise InputError(problems)
    return estate


def load_estate(path: str | Path) -> Estate:
    doc = load_yaml(path)
    _expect_kind(doc, "Estate")
    return _resolve_governance(doc, estate_from_document(doc), Path(path).resolve().parent)


def _resolve_governance(doc: LocatedDocument, estate: Estate, base: Path) -> Estate:
    """Governance paths are relative to the estate file; store them resolved, checked to exist."""
    gov = estate.governance
    problems: list[Problem] = []
    update: dict[str, str | None] = {}
    for field, kind in (("policy_dir", "directory"), ("identities", "file")):
        value = getattr(gov, field)
        if value is None:
            continue
        resolved = (base / value).resolve()
        exists = resolved.is_dir() if kind == "directory" else resolved.is_file()
        if not exists:
            problems.append(doc.problem(("governance", field), f"{kind} {value} not found (looked at {resolved})",
                                        f"create it or correct the path (relative to {base})"))
        update[field] = str(resolved)
    if gov.identities is None and (base / "identities.yaml").is_file():
        update["identities"] = str((base / "identities.yaml").resolve())
    if problems:
        raise InputError(problems)
    if not update:
        return estate
    return estate.model_copy(update={"governance": gov.model_copy(update=update)})


def _expect_kind(doc: LocatedDocument, kind: str) -> None:
    if isinstance(doc.data, dict) and doc.data.get("kind") not in (None, kind):
        raise InputError([doc.problem(("kind",), f"expected kind {kind}, found {doc.data['kind']!r}",
                                      f"pass a {kind} file here")])


# ---------------------------------------------------------------- release


@dataclass(frozen=True)
class LoadedRelease:
    """A validated release, its digest, and each artifact resolved to a VersionRef."""

    release: Release
    digest: str
    versions: dict[str, VersionRef]
    file: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def load_release(path: str | Path, estate: Estate | None = None) -> LoadedRelease:
    """Validate a release file (and, given the estate, its references and artifacts)."""
    doc = load_yaml(path)
    _expect_kind(doc, "Release")
    release: Release = _validate(doc, Release, doc.data, "release")
    problems: list[Problem] = []
    versions: dict[str, VersionRef] = {}
    base_dir = Path(path).resolve().parent
    for name, pin in release.services.items():
        loc: Loc = ("services", name)
        if estate is not None and name not in estate.services:
            problems.append(doc.problem(loc, f"service '{name}' is not in estate '{estate.name}'",
                                        f"use one of: {', '.join(sorted(estate.services))}"))
            continue
        artifact = Path(pin.artifact)
        if not artifact.is_absolute():
            artifact = base_dir / artifact
        if not artifact.is_file():
            problems.append(doc.problem((*loc, "artifact"), f"artifact file not found: {artifact}",
                                        "build the artifact or correct the path (relative to the release file)"))
            continue
        actual = sha256_file(artifact)
        if actual != pin.digest:
            problems.append(doc.problem((*loc, "digest"),
                                        f"artifact {artifact.name} has digest {actual}, the release pins {pin.digest}",
                                        "pin the digest of the artifact you tested, or restore that artifact"))
            continue
        versions[name] = VersionRef(digest=pin.digest, artifact=str(artifact), label=pin.version)
    if estate is not None:
        for name, pin in release.services.items():
            svc = estate.services.get(name)
            if svc and pin.strategy is not None:
                problems += _check_capability(doc, (*loc_of(name), "strategy", "type"), svc, pin.strategy.type)
            if svc and isinstance(pin.strategy, RollingStrategy) and \
                    pin.strategy.max_unavailable >= svc.target.replicas:
                problems.append(doc.problem((*loc_of(name), "strategy", "max_unavailable"),
                                            "max_unavailable would take every instance out of service",
                                            "lower max_unavailable below the service's replicas"))
    if problems:
        raise InputError(problems)
    return LoadedRelease(release, canonical_digest(release), versions, str(path))


def loc_of(service: str) -> Loc:
    return ("services", service)


# --------------------------------------------------------- runtime specs


def runtime_spec(estate: Estate, env: str, service: str, python: str | None = None) -> ServiceRuntimeSpec:
    """What a target needs to run ``service`` in ``env``."""
    svc: Service = estate.services[service]
    target = svc.target
    tenants = tuple(t.id for t in estate.tenants)
    traffic = None
    if svc.traffic and (svc.traffic.environments is None or env in svc.traffic.environments):
        traffic = TrafficSpec(rate=svc.traffic.rate, paths=tuple(svc.traffic.paths),
                              tenants=tenants, preview_share=svc.traffic.preview_share)
    if isinstance(target, LocalTargetSettings):
        mllp = target.mllp_ports.get(env)
        command = tuple(tok.replace("{python}", python or sys.executable)
                        .replace("{mllp_port}", str(mllp) if mllp else "{mllp_port}") for tok in target.command)
        return ServiceRuntimeSpec(
            estate=estate.name, env=env, service=service, command=command,
            health_path=target.health_path, replicas=target.replicas, env_vars=dict(target.env),
            affinity=svc.affinity, tenant_header=estate.tenant_header, tenants=tenants,
            router_port=target.ports.get(env), startup_timeout_s=target.startup_timeout,
            traffic=traffic)
    return ServiceRuntimeSpec(estate=estate.name, env=env, service=service, command=(),
                              replicas=target.replicas, affinity=svc.affinity,
                              tenant_header=estate.tenant_header, tenants=tenants, traffic=traffic,
                              target_settings=target.model_dump(mode="json"))


__all__ = ["LoadedRelease", "dotted", "estate_from_document", "find_cycle", "load_estate",
           "load_release", "runtime_spec", "sha256_file"]
