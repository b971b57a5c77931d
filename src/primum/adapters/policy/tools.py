"""Policy tooling behind ``primum policy eval`` and ``primum policy test``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from primum.adapters.policy.bundle import PolicyBundle, run_tests
from primum.adapters.policy.inputs import policy_input
from primum.core.governance.policy import PolicyDecision
from primum.core.model.estate import Estate
from primum.core.model.release import Release

__all__ = ["evaluate", "run_tests"]


def evaluate(
    estate: Estate,
    release: Release,
    digest: str,
    env: str | None = None,
    *,
    policy_dir: Path | str | None = None,
    bundle: PolicyBundle | None = None,
    emergency: bool = False,
    now: float,
    checks: Mapping[str, Any] | None = None,
    secrets: Sequence[Mapping[str, Any]] = (),
    evidence: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, PolicyDecision]:
    """Evaluate the policy for ``release`` in ``env`` (default: every environment, in promotion order).

    The bundle is ``bundle`` if given, else the baseline extended by ``policy_dir``
    (compiled once per revision and cached). Raises ``PolicyError`` when the
    policy does not compile and ``KeyError`` for an unknown environment.
    """
    policy = bundle if bundle is not None else PolicyBundle.load(policy_dir)
    envs = [estate.environment(env).name] if env is not None else estate.environment_names()
    return {
        name: policy.evaluate(policy_input(estate, release, digest, name, emergency=emergency, now=now,
                                         checks=checks, secrets=secrets, evidence=evidence), now=now)
        for name in envs
    }



