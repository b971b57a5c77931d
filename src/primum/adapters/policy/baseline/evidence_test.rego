# CI evidence rules (evidence.rego) and their parameters.
package primum.release

import rego.v1

fx_builder := "https://ci.st-elsewhere.example/builders/hosted@v1"

fx_green := {"present": true, "passed": true, "failed": 0, "total": 12}

fx_red := {"present": true, "passed": false, "failed": 2, "total": 12}

fx_provenance := {"present": true, "builders": [fx_builder]}

# The fixture input in `env` with the evidence of service "svc".
fx_with_evidence(env, ev) := fx_input({"environment": fx_envs[env], "evidence": {"svc": ev}})

# The evidence violations for `inp` under other evidence parameters. Only `evidence_violation`
# with the three input keys it reads: every `with` chain around the whole `decision` costs about
# a second of rego-cpp 1.5 compile time, and a rule replaced around `fx_decision(inp)` does not
# reach the decision it computes.
fx_evidence_violations(inp, required, builders, max_critical) := vs if {
	vs := evidence_violation with input.environment as inp.environment
		with input.services as inp.services
		with input.evidence as inp.evidence
		with evidence_required as required
		with allowed_builders as builders
		with max_critical_vulns as max_critical
}

# Their messages, and their rule ids.
fx_msgs(vs) := {v.msg | some v in vs}

fx_ev_rules(vs) := {v.rule | some v in vs}

fx_open_critical := {"prod": 0, "nonprod": 0, "ephemeral": -1}

fx_none_required := {"prod": [], "nonprod": [], "ephemeral": []}

test_no_evidence_is_allowed_everywhere_by_default if {
	every env in ["ephemeral", "nonprod", "prod"] {
		fx_decision(fx_with_evidence(env, no_evidence)).deny == set()
	}
}

test_an_input_without_evidence_counts_as_no_evidence if {
	inp := fx_base
	service_evidence == {"svc": no_evidence} with input.services as inp.services
	count(evidence_violation) == 0 with input.services as inp.services with input.environment as inp.environment
}

test_all_evidence_green_is_allowed_everywhere if {
	ev := fx_evidence({
		"provenance": fx_provenance, "tests": fx_green,
		"vulns": {"present": true, "critical": 0, "high": 7}, "sbom": {"present": true, "components": 40},
	})
	every env in ["ephemeral", "nonprod", "prod"] {
		fx_decision(fx_with_evidence(env, ev)).deny == set()
	}
}

# --- evidence-tests-failed ----------------------------------------------------------------------

test_failed_ci_tests_deny_in_every_environment if {
	every env in ["ephemeral", "nonprod", "prod"] {
		fx_rules(fx_decision(fx_with_evidence(env, fx_evidence({"tests": fx_red})))) == {"evidence-tests-failed"}
	}
}

test_failed_ci_tests_message if {
	d := fx_decision(fx_with_evidence("prod", fx_evidence({"tests": fx_red})))
	d.deny == {"svc: CI tests failed (2/12); fix them and add the report of a green run with `primum evidence add ARTIFACT FILE`"}
	some v in d.violation
	v.details == {"service": "svc", "environment": "prod", "failed": 2, "total": 12}
}

test_a_run_without_tests_is_not_a_pass if {
	empty := {"present": true, "passed": false, "failed": 0, "total": 0}
	d := fx_decision(fx_with_evidence("nonprod", fx_evidence({"tests": empty})))
	d.deny == {"svc: no CI test ran against its artifact (0 skipped or none); run the tests and add the report of a green run with `primum evidence add ARTIFACT FILE`"}
}

test_partial_test_evidence_fails_closed if {
	d := fx_decision(fx_with_evidence("prod", {"tests": {"present": true}}))
	fx_rules(d) == {"evidence-tests-failed"}
}

test_break_glass_does_not_lift_failed_tests if {
	inp := fx_merge(fx_with_evidence("prod", fx_evidence({"tests": fx_red})), {"emergency": true})
	d := fx_decision(inp)
	d.class == "emergency"
	fx_rules(d) == {"evidence-tests-failed"}
}

test_only_the_service_with_failed_tests_is_named if {
	inp := fx_input({
		"services": {"api": fx_service("internal", "none", []), "web": fx_service("internal", "none", [])},
		"evidence": {"api": fx_evidence({"tests": fx_green}), "web": fx_evidence({"tests": fx_red})},
	})
	d := fx_decision(inp)
	[v.details.service | some v in d.violation] == ["web"]
}

# --- evidence-critical-vulns --------------------------------------------------------------------

test_a_critical_vulnerability_denies_prod_and_nonprod if {
	ev := fx_evidence({"vulns": {"present": true, "critical": 1, "high": 0}})
	d := fx_decision(fx_with_evidence("prod", ev))
	d.deny == {"svc: its artifact has 1 critical vulnerabilities; prod allows at most 0 (max_critical_vulns); fix or upgrade the affected packages and add the new scan with `primum evidence add ARTIFACT FILE`"}
	fx_rules(fx_decision(fx_with_evidence("nonprod", ev))) == {"evidence-critical-vulns"}
}

test_ephemeral_has_no_critical_limit_by_default if {
	ev := fx_evidence({"vulns": {"present": true, "critical": 9, "high": 0}})
	fx_decision(fx_with_evidence("ephemeral", ev)).deny == set()
}

test_high_vulnerabilities_do_not_deny if {
	ev := fx_evidence({"vulns": {"present": true, "critical": 0, "high": 30}})
	fx_decision(fx_with_evidence("prod", ev)).deny == set()
}

test_the_critical_limit_is_a_parameter if {
	ev := fx_evidence({"vulns": {"present": true, "critical": 2, "high": 0}})
	limits := {"prod": 2, "nonprod": 0, "ephemeral": -1}
	fx_evidence_violations(fx_with_evidence("prod", ev), fx_none_required, [], limits) == set()
	fx_ev_rules(fx_evidence_violations(fx_with_evidence("nonprod", ev), fx_none_required, [], limits)) == {"evidence-critical-vulns"}
}

# --- evidence-builder ---------------------------------------------------------------------------

test_any_builder_when_none_is_listed if {
	ev := fx_evidence({"provenance": {"present": true, "builders": ["https://laptop.example/me"]}})
	fx_decision(fx_with_evidence("prod", ev)).deny == set()
}

test_a_builder_outside_the_allowed_list_denies if {
	other := "https://laptop.example/me"
	ev := fx_evidence({"provenance": {"present": true, "builders": [fx_builder, other]}})
	vs := fx_evidence_violations(fx_with_evidence("prod", ev), fx_none_required, [fx_builder], fx_open_critical)
	fx_ev_rules(vs) == {"evidence-builder"}
	fx_msgs(vs) == {"svc: its artifact was built by https://laptop.example/me, which is not an allowed builder (allowed_builders); rebuild it on an allowed builder and add that provenance with `primum evidence add ARTIFACT FILE`"}
}

test_an_allowed_builder_passes if {
	ev := fx_evidence({"provenance": fx_provenance})
	fx_evidence_violations(fx_with_evidence("prod", ev), fx_none_required, [fx_builder], fx_open_critical) == set()
}

test_allowed_builders_do_not_require_provenance if {
	fx_evidence_violations(fx_with_evidence("prod", no_evidence), fx_none_required, [fx_builder], fx_open_critical) == set()
}

# --- evidence-required --------------------------------------------------------------------------

fx_prod_requires := {"prod": ["provenance", "tests", "vulns", "sbom"], "nonprod": ["tests"], "ephemeral": []}

test_required_evidence_that_is_absent_denies if {
	vs := fx_evidence_violations(fx_with_evidence("prod", no_evidence), fx_prod_requires, [], fx_open_critical)
	fx_ev_rules(vs) == {"evidence-required"}
	fx_msgs(vs) == {
		"svc: no build provenance for its artifact, which prod requires (evidence_required); add SLSA provenance v1 with `primum evidence add ARTIFACT FILE`",
		"svc: no test results for its artifact, which prod requires (evidence_required); add a JUnit XML report with `primum evidence add ARTIFACT FILE`",
		"svc: no vulnerability scan for its artifact, which prod requires (evidence_required); add a SARIF, Trivy or Grype report with `primum evidence add ARTIFACT FILE`",
		"svc: no SBOM for its artifact, which prod requires (evidence_required); add a CycloneDX JSON SBOM with `primum evidence add ARTIFACT FILE`",
	}
	{v.details.kind | some v in vs} == {"provenance", "tests", "vulns", "sbom"}
}

test_required_evidence_that_is_present_passes if {
	ev := fx_evidence({
		"provenance": fx_provenance, "tests": fx_green,
		"vulns": {"present": true, "critical": 0, "high": 0}, "sbom": {"present": true, "components": 3},
	})
	fx_evidence_violations(fx_with_evidence("prod", ev), fx_prod_requires, [], fx_open_critical) == set()
}

test_required_evidence_is_per_environment_class if {
	vs := fx_evidence_violations(fx_with_evidence("nonprod", no_evidence), fx_prod_requires, [], fx_open_critical)
	{v.details.kind | some v in vs} == {"tests"}
	fx_evidence_violations(fx_with_evidence("ephemeral", no_evidence), fx_prod_requires, [], fx_open_critical) == set()
}

# --- evidence-params ----------------------------------------------------------------------------

test_a_missing_environment_class_in_the_params_denies if {
	vs := fx_evidence_violations(fx_with_evidence("nonprod", no_evidence), {"prod": []}, [], {"prod": 0})
	fx_ev_rules(vs) == {"evidence-params"}
	fx_msgs(vs) == {
		"policy parameters (nonprod): evidence_required has no list for this environment class; fix params.rego (see docs/POLICY.md)",
		"policy parameters (nonprod): max_critical_vulns has no number for this environment class; fix params.rego (see docs/POLICY.md)",
	}
}

test_an_unknown_evidence_kind_denies if {
	required := {"prod": ["attestation"], "nonprod": [], "ephemeral": []}
	vs := fx_evidence_violations(fx_with_evidence("prod", no_evidence), required, [], fx_open_critical)
	fx_msgs(vs) == {"policy parameters (prod): evidence_required lists attestation, which is not provenance, tests, vulns or sbom; fix params.rego (see docs/POLICY.md)"}
}

test_allowed_builders_must_be_a_list if {
	vs := fx_evidence_violations(fx_with_evidence("prod", no_evidence), fx_none_required, "ci", fx_open_critical)
	fx_ev_rules(vs) == {"evidence-params"}
}
