# Baseline denials.
package primum.release

import rego.v1

test_fixture_is_allowed_everywhere if {
	every env in ["ephemeral", "nonprod", "prod"] {
		fx_decision(fx_input({"environment": fx_envs[env]})).deny == set()
	}
}

test_prod_needs_a_ticket if {
	d := fx_decision(fx_input({"release": fx_release({"ticket": " "})}))
	fx_rules(d) == {"prod-ticket"}
	d.deny == {"prod is a production environment: the release needs a change ticket (release.ticket)"}
}

test_nonprod_needs_no_ticket if {
	fx_decision(fx_input({"release": fx_release({"ticket": ""}), "environment": fx_envs.nonprod})).deny == set()
}

test_schema_change_needs_a_ticket_before_nonprod if {
	d := fx_decision(fx_input({
		"release": fx_release({"ticket": ""}),
		"environment": fx_envs.nonprod,
		"services": {"db": fx_service("business", "none", ["data-schema"])},
	}))
	fx_rules(d) == {"schema-ticket"}
}

test_schema_change_without_ticket_in_prod_is_denied_twice if {
	d := fx_decision(fx_input({
		"release": fx_release({"ticket": ""}),
		"services": {"db": fx_service("business", "none", ["data-schema"])},
	}))
	fx_rules(d) == {"prod-ticket", "schema-ticket"}
}

test_schema_change_in_ephemeral_needs_no_ticket if {
	d := fx_decision(fx_input({
		"release": fx_release({"ticket": ""}),
		"environment": fx_envs.ephemeral,
		"services": {"db": fx_service("business", "none", ["data-schema"])},
	}))
	d.deny == set()
}

test_clinical_critical_without_analysis_is_denied_in_prod if {
	svc := fx_service_with("clinical-critical", "phi", [], {"analysis_seconds": 0, "strategy": fx_no_analysis})
	d := fx_decision(fx_input({"services": {"sched": svc}}))
	fx_rules(d) == {"clinical-critical-analysis"}
	d.deny == {"sched is clinical-critical: its canary strategy has no analysis step, which prod requires"}
}

test_clinical_critical_without_analysis_is_allowed_in_nonprod if {
	svc := fx_service_with("clinical-critical", "phi", [], {"analysis_seconds": 0})
	fx_decision(fx_input({"services": {"sched": svc}, "environment": fx_envs.nonprod})).deny == set()
}

test_emergency_does_not_skip_the_analysis if {
	svc := fx_service_with("clinical-critical", "phi", [], {"analysis_seconds": 0})
	d := fx_decision(fx_input({"services": {"sched": svc}, "emergency": true}))
	d.class == "emergency"
	fx_rules(d) == {"clinical-critical-analysis"}
}

test_high_impact_without_analysis_is_denied_in_prod if {
	svc := fx_service_with("patient-facing", "phi", [], {"analysis_seconds": 0})
	fx_rules(fx_decision(fx_input({"services": {"portal": svc}}))) == {"analysis-gate"}
}

test_normal_without_analysis_is_denied_in_prod if {
	svc := fx_service_with("business", "pii", [], {"analysis_seconds": 0})
	fx_rules(fx_decision(fx_input({"services": {"erp": svc}}))) == {"analysis-gate"}
}

test_standard_without_analysis_is_allowed_in_prod if {
	svc := fx_service_with("internal", "none", [], {"analysis_seconds": 0})
	fx_decision(fx_input({"services": {"job": svc}})).deny == set()
}

test_integration_engine_without_probe_gate_is_denied if {
	svc := fx_service_with("clinical-critical", "phi", ["integration-engine"], {"has_probe_gates": false})
	every env in ["nonprod", "prod"] {
		fx_rules(fx_decision(fx_input({"services": {"hl7": svc}, "environment": fx_envs[env]}))) == {"probe-gate"}
	}
}

test_integration_engine_without_probe_gate_is_allowed_in_ephemeral if {
	svc := fx_service_with("clinical-critical", "phi", ["integration-engine"], {"has_probe_gates": false})
	fx_decision(fx_input({"services": {"hl7": svc}, "environment": fx_envs.ephemeral})).deny == set()
}

test_failed_previous_environment_is_denied if {
	every env in ["nonprod", "prod"] {
		d := fx_decision(fx_input({"checks": fx_checks({"previous_environment_passed": false}), "environment": fx_envs[env]}))
		fx_rules(d) == {"previous-environment"}
	}
}

test_red_required_check_is_denied_in_prod if {
	d := fx_decision(fx_input({"checks": fx_checks({"green": []})}))
	fx_rules(d) == {"required-checks"}
}

test_red_required_check_is_allowed_in_nonprod if {
	fx_decision(fx_input({"checks": fx_checks({"green": []}), "environment": fx_envs.nonprod})).deny == set()
}

test_every_violation_is_a_deny if {
	d := fx_decision(fx_input({"release": fx_release({"ticket": ""}), "checks": fx_checks({"green": []})}))
	count(d.violation) == 2
	d.deny == {v.msg | some v in d.violation}
}

test_a_committed_secret_denies_in_every_environment if {
	secret := {"file": "releases/rel.yaml", "line": 3, "type": "AWS Access Key"}
	every env in ["ephemeral", "nonprod", "prod"] {
		d := fx_decision(fx_input({"environment": fx_envs[env], "secrets": [secret]}))
		"committed-secret" in fx_rules(d)
	}
}

test_no_secrets_no_denial if {
	d := fx_decision(fx_input({"secrets": []}))
	not "committed-secret" in fx_rules(d)
}
