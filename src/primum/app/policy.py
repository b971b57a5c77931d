"""Use cases of the policy bundles outside a rollout: evaluate a release file as the controller would
(`primum policy eval`) and run the bundles' Rego unit tests (`primum policy test`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from primum.adapters.policy.tools import evaluate, run_tests
from primum.adapters.store.repository import Store
from primum.app.releases import resolve_estate, scan_for_secrets
from primum.core.governance.policy import PolicyDecision
from primum.core.model.validate import load_release

if TYPE_CHECKING:
    from primum.adapters.policy.bundle import TestSummary


def evaluate_release(store: Store, release_file: Path, home: Path, *, estate: str | None, env: str | None,
                     emergency: bool, policy_dir: Path | None, now: float) -> dict[str, PolicyDecision]:
    """The policy decision per environment (or for ``env``) for a release file, with the secrets found in it
    and the CI evidence recorded for its artifacts: the input the controller's gate gives the policy."""
    from primum.app.gate import Gatekeeper

    est, estate_path = resolve_estate(estate, home)
    loaded = load_release(release_file, est)
    return evaluate(est, loaded.release, loaded.digest, env, emergency=emergency, now=now,
                    policy_dir=policy_dir or est.governance.policy_dir,
                    secrets=scan_for_secrets([release_file, estate_path]),
                    evidence=Gatekeeper(store).evidence(loaded.release))


def run_policy_tests(directory: Path | None) -> TestSummary:
    """Run the Rego unit tests of ``directory`` against the baseline extended by it (or the baseline's own)."""
    return run_tests(directory)
