# What each class requires, per environment class.
package primum.release

import rego.v1

fx_requirements(tier, data_class, touches, env) := fx_decision(fx_one(tier, data_class, touches, env)).requirements

fx_emergency(tier, data_class, touches, env) := fx_decision(fx_merge(fx_one(tier, data_class, touches, env), {"emergency": true})).requirements

test_prod_standard_needs_nothing if {
	fx_requirements("internal", "none", [], "prod") == {
		"approvals": 0, "cab_approvals": 0, "min_analysis_seconds": 0, "gates": [], "break_glass_only": false,
	}
}

test_prod_normal_needs_one_approval_and_analysis if {
	fx_requirements("business", "pii", [], "prod") == {
		"approvals": 1, "cab_approvals": 0, "min_analysis_seconds": 60, "gates": ["analysis"], "break_glass_only": false,
	}
}

test_prod_high_impact_needs_two_approvals_one_from_cab if {
	fx_requirements("patient-facing", "phi", [], "prod") == {
		"approvals": 2, "cab_approvals": 1, "min_analysis_seconds": 300, "gates": ["analysis"], "break_glass_only": false,
	}
}

test_prod_integration_engine_needs_a_probe_gate if {
	fx_requirements("clinical-critical", "phi", ["integration-engine"], "prod").gates == ["analysis", "probe"]
}

test_prod_emergency_needs_break_glass_and_keeps_the_analysis if {
	fx_emergency("clinical-critical", "phi", ["integration-engine"], "prod") == {
		"approvals": 0, "cab_approvals": 0, "min_analysis_seconds": 300, "gates": ["analysis", "probe"],
		"break_glass_only": true,
	}
}

test_nonprod_normal_needs_no_approval if {
	fx_requirements("business", "pii", [], "nonprod") == {
		"approvals": 0, "cab_approvals": 0, "min_analysis_seconds": 0, "gates": [], "break_glass_only": false,
	}
}

test_nonprod_high_impact_needs_one_approval_no_cab if {
	r := fx_requirements("patient-facing", "phi", [], "nonprod")
	r.approvals == 1
	r.cab_approvals == 0
	r.min_analysis_seconds == 0
	r.gates == []
}

test_nonprod_integration_engine_still_needs_a_probe_gate if {
	fx_requirements("clinical-critical", "phi", ["integration-engine"], "nonprod").gates == ["probe"]
}

test_ephemeral_needs_nothing if {
	every tier in ["internal", "business", "patient-facing", "clinical-critical"] {
		fx_requirements(tier, "phi", ["integration-engine", "identity"], "ephemeral") == {
			"approvals": 0, "cab_approvals": 0, "min_analysis_seconds": 0, "gates": [], "break_glass_only": false,
		}
	}
}

test_emergency_is_break_glass_in_every_environment if {
	every env in ["ephemeral", "nonprod", "prod"] {
		r := fx_emergency("internal", "none", [], env)
		r.break_glass_only == true
		r.approvals == 0
	}
}

test_gates_are_per_service_class if {
	# a standard integration helper in a high-impact release needs no probe gate
	d := fx_decision(fx_input({"services": {
		"helper": fx_service("internal", "none", []),
		"portal": fx_service("patient-facing", "phi", []),
	}}))
	d.requirements.gates == ["analysis"]
	d.class == "high-impact"
}

test_unknown_environment_class_leaves_requirements_undefined if {
	inp := fx_input({"environment": {"name": "lab", "class": "lab", "index": 0, "first": true, "last": true}})
	not fx_decision(inp)
}
