# primum healthcare baseline: the numbers behind each change class.
#
# An organisation tunes these by shipping its own `params.rego` (same relative
# path) in its policy directory: that file then replaces this one. Keep every
# key: a missing entry makes `requirements` undefined, which denies the release
# (fail closed).
#
# Keys: environment class (ephemeral, nonprod, prod) -> change class.
package primum.release

import rego.v1

# Distinct approvers a release needs before it enters an environment of this class.
approvals_required := {
	"prod": {"standard": 0, "normal": 1, "high-impact": 2, "emergency": 0},
	"nonprod": {"standard": 0, "normal": 0, "high-impact": 1, "emergency": 0},
	"ephemeral": {"standard": 0, "normal": 0, "high-impact": 0, "emergency": 0},
}

# How many of those approvers must be from the change advisory board (role `cab`).
cab_approvals_required := {
	"prod": {"standard": 0, "normal": 0, "high-impact": 1, "emergency": 0},
	"nonprod": {"standard": 0, "normal": 0, "high-impact": 0, "emergency": 0},
	"ephemeral": {"standard": 0, "normal": 0, "high-impact": 0, "emergency": 0},
}

# Minimum seconds of canary analysis a service of this risk class should get.
# An emergency keeps the minimum of its risk class: break-glass bypasses
# approvals, never the analysis.
min_analysis_required := {
	"prod": {"standard": 0, "normal": 60, "high-impact": 300},
	"nonprod": {"standard": 0, "normal": 0, "high-impact": 0},
	"ephemeral": {"standard": 0, "normal": 0, "high-impact": 0},
}

# Gates a service of this risk class must have. `analysis`: its strategy
# analyses the new version (an analysis step, blue-green preview/post analysis
# or rolling batch analysis). `probe`: integration engines only (services that
# touch `integration-engine`) must declare at least one probe gate.
gates_required := {
	"prod": {"standard": [], "normal": ["analysis"], "high-impact": ["analysis", "probe"]},
	"nonprod": {"standard": [], "normal": [], "high-impact": ["probe"]},
	"ephemeral": {"standard": [], "normal": [], "high-impact": []},
}

# CI evidence (input.evidence: provenance, tests, vulns, sbom; see evidence.rego). These three
# keys are read by evidence.rego; a missing key, or a missing environment class in one of them,
# denies every release (`evidence-params`).
#
# The kinds of evidence ("provenance", "tests", "vulns", "sbom") every changed service's artifact
# must have before it enters an environment of this class. Empty by default: releases without
# ingested evidence keep working until an organisation turns this on.
evidence_required := {
	"prod": [],
	"nonprod": [],
	"ephemeral": [],
}

# Builder ids (SLSA `runDetails.builder.id`) allowed to build what is released. Empty: any builder.
# Otherwise every builder named by a service's provenance must be in the list.
allowed_builders := []

# The most critical vulnerabilities (newest scan of each scanner, added up) a changed service's
# artifact may carry into an environment of this class; -1: no limit.
max_critical_vulns := {
	"prod": 0,
	"nonprod": 0,
	"ephemeral": -1,
}
