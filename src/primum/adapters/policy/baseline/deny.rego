# Baseline denials. Each is a conftest-style `violation` object (msg plus
# metadata: rule, details); every violation is also a `deny` message.
package primum.release

import rego.v1

default prod := false

prod if input.environment.class == "prod"

env_name := input.environment.name

ticket := trim_space(object.get(input.release, "ticket", ""))

deny contains v.msg if {
	some v in violation
}

# A production release names its change ticket.
violation contains v if {
	prod
	ticket == ""
	v := {
		"msg": concat("", [env_name, " is a production environment: the release needs a change ticket (release.ticket)"]),
		"rule": "prod-ticket",
		"details": {"environment": env_name},
	}
}

# A data-schema change names its ticket before it reaches any shared environment.
violation contains v if {
	input.environment.class != "ephemeral"
	ticket == ""
	some name, svc in input.services
	"data-schema" in svc.touches
	v := {
		"msg": concat("", [name, " changes a data schema: schema changes need a change ticket (release.ticket) before ", env_name]),
		"rule": "schema-ticket",
		"details": {"service": name, "environment": env_name},
	}
}

# Clinical-critical services never reach production without analysis.
unanalysed_clinical contains name if {
	prod
	some name, svc in input.services
	svc.tier == "clinical-critical"
	svc.analysis_seconds <= 0
}

violation contains v if {
	some name in unanalysed_clinical
	v := {
		"msg": concat("", [name, " is clinical-critical: its ", input.services[name].strategy.type, " strategy has no analysis step, which ", env_name, " requires"]),
		"rule": "clinical-critical-analysis",
		"details": {"service": name, "environment": env_name},
	}
}

# A service whose class requires an analysis gate here must analyse the new version.
violation contains v if {
	some name, gates in service_gates
	"analysis" in gates
	not name in unanalysed_clinical
	svc := input.services[name]
	svc.analysis_seconds <= 0
	v := {
		"msg": concat("", [name, " is ", service_class[name], ": it needs an analysis gate in ", env_name, ", but its ", svc.strategy.type, " strategy analyses nothing"]),
		"rule": "analysis-gate",
		"details": {"service": name, "environment": env_name, "class": service_class[name]},
	}
}

# An integration engine whose class requires a probe gate here must declare one.
violation contains v if {
	some name, gates in service_gates
	"probe" in gates
	not input.services[name].has_probe_gates
	v := {
		"msg": concat("", [name, " is a ", service_class[name], " integration engine change: it needs a probe gate in ", env_name, " (add `probes:` to the service)"]),
		"rule": "probe-gate",
		"details": {"service": name, "environment": env_name, "class": service_class[name]},
	}
}

# A release that failed the environment before this one does not go on.
violation contains v if {
	input.checks.previous_environment_passed == false
	v := {
		"msg": concat("", ["the release did not pass the environment before ", env_name]),
		"rule": "previous-environment",
		"details": {"environment": env_name},
	}
}

# Production takes only releases whose required checks are green.
violation contains v if {
	prod
	some check in input.checks.required
	not check in input.checks.green
	v := {
		"msg": concat("", ["required check ", check, " is not green; ", env_name, " takes only releases whose required checks passed"]),
		"rule": "required-checks",
		"details": {"check": check, "environment": env_name},
	}
}

# Shorter analysis than the class requires: the minimum canary time is enforced.
# (An emergency keeps the minimum of its risk class: break-glass bypasses approvals,
# never the analysis.) Tune the numbers in params.rego.
violation contains v if {
	some name, svc in input.services
	minimum := min_analysis_required[env_class][service_class[name]]
	svc.analysis_seconds > 0 # none at all: the analysis-gate and clinical-critical rules say so
	svc.analysis_seconds < minimum
	v := {
		"msg": concat("", [
			name, " is analysed for ", sprintf("%v", [svc.analysis_seconds]), "s in ", env_name, "; a ",
			service_class[name], " change needs at least ", sprintf("%v", [minimum]), "s of analysis",
		]),
		"rule": "min-analysis",
		"details": {"service": name, "environment": env_name, "seconds": svc.analysis_seconds, "minimum": minimum},
	}
}

# A secret committed in the release's own files (found by primum's scanner when the release was
# submitted): the release is denied in every environment. Remove the secret and rotate it.
violation contains v if {
	some secret in input.secrets
	v := {
		"msg": sprintf("a %s is committed in %s line %v: remove it from the file and rotate it", [secret.type, secret.file, secret.line]),
		"rule": "committed-secret",
		"details": {"file": secret.file, "line": secret.line, "type": secret.type},
	}
}
