# What the release's class requires in this environment (numbers: params.rego).
package primum.release

import rego.v1

env_class := input.environment.class

# service name -> the gates its own risk class requires here (`probe` only for
# services that touch an integration engine)
service_gates[name] := gates if {
	some name, svc in input.services
	required := gates_required[env_class][service_class[name]]
	plain := {g | some g in required; g != "probe"}
	probe := {"probe" | "probe" in required; "integration-engine" in svc.touches}
	gates := plain | probe
}

requirements := {
	"approvals": approvals_required[env_class][class],
	"cab_approvals": cab_approvals_required[env_class][class],
	"min_analysis_seconds": min_analysis_required[env_class][risk_class],
	"gates": sort([g | some g in {g | some gates in service_gates; some g in gates}]),
	"break_glass_only": class == "emergency",
}
