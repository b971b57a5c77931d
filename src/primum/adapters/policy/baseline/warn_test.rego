# Baseline warnings.
package primum.release

import rego.v1

test_fixture_has_no_warnings if {
	fx_decision(fx_base).warn == set()
}

test_short_description_warns if {
	d := fx_decision(fx_input({"release": fx_release({"description": "fix"}), "environment": fx_envs.nonprod}))
	d.warn == {"the release description is shorter than 10 characters: say what changes and why"}
	d.deny == set()
}

test_short_analysis_denies if {
	svc := fx_service_with("patient-facing", "phi", [], {"analysis_seconds": 30})
	d := fx_decision(fx_input({"services": {"portal": svc}}))
	d.deny == {"portal is analysed for 30s in prod; a high-impact change needs at least 300s of analysis"}
}

test_short_analysis_is_allowed_in_nonprod if {
	svc := fx_service_with("patient-facing", "phi", [], {"analysis_seconds": 30})
	d := fx_decision(fx_input({"services": {"portal": svc}, "environment": fx_envs.nonprod}))
	d.deny == set()
	d.warn == set()
}

test_unknown_previous_environment_warns_in_prod if {
	d := fx_decision(fx_input({"checks": fx_checks({"previous_environment_passed": null})}))
	d.warn == {"no record that the release passed the environment before prod"}
}

test_first_environment_has_no_previous if {
	env := {"name": "prod", "class": "prod", "index": 0, "first": true, "last": true}
	d := fx_decision(fx_input({"checks": fx_checks({"previous_environment_passed": null}), "environment": env}))
	d.warn == set()
}

test_missing_source_commit_warns_in_prod if {
	d := fx_decision(fx_input({"release": fx_release({"source_commit": ""})}))
	d.warn == {"the release names no source_commit: its artifacts cannot be traced to a commit"}
}

test_emergency_warns if {
	d := fx_decision(fx_input({"emergency": true}))
	d.warn == {"break-glass: approvals are bypassed (never the analysis); the change needs a retrospective review"}
}
