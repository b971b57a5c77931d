# Fixtures for the baseline's tests (a _test.rego file: `primum policy test`
# loads it, decisions never do).
#
# Tests replace the input one top-level key at a time (`with input.release as
# ...`): rego-cpp 1.5 can crash on `with input as {...}` replacing the whole
# input, so `fx_decision` below does it key by key.
package primum.release

import rego.v1

fx_envs := {
	"ephemeral": {"name": "preview", "class": "ephemeral", "index": 0, "first": true, "last": false},
	"nonprod": {"name": "staging", "class": "nonprod", "index": 1, "first": false, "last": false},
	"prod": {"name": "prod", "class": "prod", "index": 2, "first": false, "last": true},
}

fx_canary := {"type": "canary", "steps": [{"set_weight": 20}, {"analysis": {"duration": 300}}, {"set_weight": 50}]}

fx_no_analysis := {"type": "canary", "steps": [{"set_weight": 20}, {"set_weight": 50}]}

# A service the release changes, as policy_input describes it: analysed for
# 300 s, with a probe gate.
fx_service(tier, data_class, touches) := {
	"tier": tier,
	"data_class": data_class,
	"touches": touches,
	"owner": "team-test",
	"template": null,
	"depends_on": [],
	"strategy": fx_canary,
	"analysis_seconds": 300,
	"has_probe_gates": true,
}

fx_base := {
	"release": {
		"id": "rel-test-1",
		"digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
		"description": "a release of the test fixtures",
		"ticket": "CHG-1",
		"source_commit": "5eed00d",
		"services": {"svc": {"digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111", "version": "1.0.0", "strategy": null}},
	},
	"environment": fx_envs.prod,
	"estate": {"name": "test-estate"},
	"services": {"svc": fx_service("internal", "none", [])},
	"checks": {"previous_environment_passed": true, "required": ["unit-tests"], "green": ["unit-tests"]},
	"secrets": [],
	"evidence": {},
	"emergency": false,
	"now_ns": 1798761600000000000,
}

# `base` with the top-level keys of `patch` replacing its own (a shallow merge:
# rego-cpp 1.5's object.union does not merge nested objects as OPA's does).
fx_merge(base, patch) := {k: v |
	some k in object.keys(base) | object.keys(patch)
	v := object.get(patch, k, object.get(base, k, null))
}

# The fixture input with `patch`'s top-level keys replaced.
fx_input(patch) := fx_merge(fx_base, patch)

# The fixture release with `patch`'s keys replaced.
fx_release(patch) := fx_merge(fx_base.release, patch)

# The fixture checks with `patch`'s keys replaced.
fx_checks(patch) := fx_merge(fx_base.checks, patch)

# The fixture input for one service in one environment class.
fx_one(tier, data_class, touches, env) := fx_input({
	"services": {"svc": fx_service(tier, data_class, touches)},
	"environment": fx_envs[env],
})

# The decision for an input document.
fx_decision(inp) := d if {
	d := decision with input.release as inp.release
		with input.environment as inp.environment
		with input.estate as inp.estate
		with input.services as inp.services
		with input.checks as inp.checks
		with input.secrets as inp.secrets
		with input.evidence as inp.evidence
		with input.emergency as inp.emergency
		with input.now_ns as inp.now_ns
}

# The rule ids of a decision's violations.
fx_rules(d) := {v.rule | some v in d.violation}

# A service with `patch`'s keys replaced (e.g. analysis_seconds, has_probe_gates).
fx_service_with(tier, data_class, touches, patch) := fx_merge(fx_service(tier, data_class, touches), patch)

# An evidence summary (input.evidence[service]): no evidence, with `patch`'s kinds replaced.
fx_evidence(patch) := fx_merge(no_evidence, patch)
