"""What a target can do, and what each strategy needs of it.

A hybrid estate has targets that split traffic by weight (the local router, HAProxy, a Gateway API
route), targets that can only switch a service from one version to another (a Kubernetes Service
selector), and targets that can only apply a version and revert it (an SSH host, a SaaS webhook, a
Terraform module). A strategy the service's target cannot carry out is an estate error at ``validate``,
naming the file and field, never a surprise in the middle of a release.
"""

from __future__ import annotations

from enum import StrEnum


class Capability(StrEnum):
    weighted_split = "weighted-split"  # a share of requests by weight (canary)
    backend_switch = "backend-switch"  # a preview of the new side, then all traffic at once (blue-green)
    instance_replacement = "instance-replacement"  # instances replaced a few at a time (rolling)
    apply = "apply"  # apply a version, verify it, revert it; no traffic control (apply-only targets)


TRAFFIC = frozenset({Capability.weighted_split, Capability.backend_switch, Capability.instance_replacement})

# The capability each strategy type needs of its target.
STRATEGY_NEEDS: dict[str, Capability] = {
    "canary": Capability.weighted_split,
    "blue_green": Capability.backend_switch,
    "rolling": Capability.instance_replacement,
    "apply": Capability.apply,
}


def missing_capability(strategy: str, capabilities: frozenset[Capability]) -> Capability | None:
    """The capability ``strategy`` needs that a target with ``capabilities`` lacks, if any."""
    need = STRATEGY_NEEDS.get(strategy)
    return need if need is not None and need not in capabilities else None


def strategies_for(capabilities: frozenset[Capability]) -> list[str]:
    """The strategy types a target with ``capabilities`` can carry out, in a stable order."""
    return [name for name, need in STRATEGY_NEEDS.items() if need in capabilities]
