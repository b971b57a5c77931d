# Classification: every class, the most severe service wins, emergency overrides.
package primum.release

import rego.v1

test_internal_service_without_phi_is_standard if {
	fx_decision(fx_one("internal", "none", [], "prod")).class == "standard"
}

test_business_service_without_phi_is_standard if {
	fx_decision(fx_one("business", "none", [], "prod")).class == "standard"
}

test_standard_has_no_reasons if {
	fx_decision(fx_one("internal", "none", [], "prod")).reasons.svc == []
}

test_pii_is_normal if {
	d := fx_decision(fx_one("business", "pii", [], "prod"))
	d.class == "normal"
	d.reasons.svc == ["data class pii"]
}

test_red_required_check_is_normal if {
	d := fx_decision(fx_input({"checks": fx_checks({"green": []}), "environment": fx_envs.nonprod}))
	d.class == "normal"
	d.reasons.svc == ["required check unit-tests is not green"]
}

test_strategy_override_is_normal if {
	d := fx_decision(fx_input({"release": fx_release({"services": {"svc": {"digest": "sha256:1", "version": "2", "strategy": fx_canary}}})}))
	d.class == "normal"
}

test_patient_facing_is_high_impact if {
	fx_decision(fx_one("patient-facing", "none", [], "prod")).class == "high-impact"
}

test_clinical_critical_is_high_impact if {
	fx_decision(fx_one("clinical-critical", "none", [], "prod")).class == "high-impact"
}

test_phi_is_high_impact if {
	d := fx_decision(fx_one("internal", "phi", [], "prod"))
	d.class == "high-impact"
	d.reasons.svc == ["data class phi"]
}

test_identity_is_high_impact if {
	fx_decision(fx_one("internal", "none", ["identity"], "prod")).class == "high-impact"
}

test_integration_engine_is_high_impact if {
	fx_decision(fx_one("internal", "none", ["integration-engine"], "prod")).class == "high-impact"
}

test_data_schema_is_high_impact if {
	d := fx_decision(fx_one("business", "none", ["data-schema"], "prod"))
	d.class == "high-impact"
	d.reasons.svc == ["touches data-schema"]
}

test_class_does_not_depend_on_environment if {
	every env in ["ephemeral", "nonprod", "prod"] {
		fx_decision(fx_one("patient-facing", "none", [], env)).class == "high-impact"
		fx_decision(fx_one("internal", "none", [], env)).class == "standard"
	}
}

test_most_severe_service_wins if {
	d := fx_decision(fx_input({"services": {
		"a": fx_service("internal", "none", []),
		"b": fx_service("business", "pii", []),
		"c": fx_service("clinical-critical", "phi", []),
	}}))
	d.class == "high-impact"
	d.service_classes == {"a": "standard", "b": "normal", "c": "high-impact"}
}

test_normal_beats_standard if {
	d := fx_decision(fx_input({"services": {
		"a": fx_service("internal", "none", []),
		"b": fx_service("business", "pii", []),
	}}))
	d.class == "normal"
}

test_emergency_overrides_the_risk_class if {
	d := fx_decision(fx_input({"emergency": true}))
	d.class == "emergency"
	d.risk_class == "standard"
}
