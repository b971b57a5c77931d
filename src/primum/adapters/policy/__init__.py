"""Policy as code: Rego bundles (the healthcare baseline plus an organisation's
policies) evaluated with regopy, fail closed, every decision logged.

See docs/POLICY.md.
"""

from primum.adapters.policy.bundle import PolicyBundle, TestResult, TestSummary, run_tests
from primum.adapters.policy.files import (
    BASELINE_DIR,
    PolicyError,
    PolicyFile,
    PolicyTest,
    bundle_revision,
    policy_files,
)
from primum.adapters.policy.inputs import analysis_seconds, policy_input
from primum.adapters.policy.tools import evaluate
from primum.core.governance.policy import CLASSES, DECISION_PATH, DecisionLogEntry, PolicyDecision, Requirements

__all__ = [
    "BASELINE_DIR",
    "CLASSES",
    "DECISION_PATH",
    "DecisionLogEntry",
    "PolicyBundle",
    "PolicyDecision",
    "PolicyError",
    "PolicyFile",
    "PolicyTest",
    "Requirements",
    "TestResult",
    "TestSummary",
    "analysis_seconds",
    "bundle_revision",
    "evaluate",
    "policy_files",
    "policy_input",
    "run_tests",
]
