# CI evidence about each changed service's artifact (input.evidence, docs/POLICY.md): build
# provenance, test results, vulnerability scans and SBOMs, ingested from CI files with
# `primum evidence add ARTIFACT FILE` (primum.adapters.evidence.ingest).
#
# Always on, whatever the parameters, for every changed service:
#   evidence-tests-failed    its newest CI test run failed, or ran no test
#   evidence-critical-vulns  its scans report more critical vulnerabilities than
#                            max_critical_vulns allows here (-1: no limit)
#   evidence-builder         its provenance names a builder not in allowed_builders
#                            (when that list is not empty)
#   evidence-required        a kind of evidence evidence_required lists here is absent
#   evidence-params          the parameters themselves are unusable (fail closed)
# Numbers and lists: params.rego. Break-glass does not lift these rules.
package primum.release

import rego.v1

evidence_fix := "`primum evidence add ARTIFACT FILE`"

# What a service without evidence has, and what fills any part or field the input leaves out.
no_evidence := {
	"provenance": {"present": false, "builders": []},
	"tests": {"present": false, "passed": false, "failed": 0, "total": 0},
	"vulns": {"present": false, "critical": 0, "high": 0},
	"sbom": {"present": false, "components": 0},
}

# How each kind is named in messages, and which CI files give it.
evidence_kinds := {
	"provenance": ["build provenance", "SLSA provenance v1"],
	"tests": ["test results", "a JUnit XML report"],
	"vulns": ["vulnerability scan", "a SARIF, Trivy or Grype report"],
	"sbom": ["SBOM", "a CycloneDX JSON SBOM"],
}

# input.evidence, or no evidence for anyone when the input has none (an older caller).
default evidence_input := {}

evidence_input := input.evidence

# service name -> its evidence summary with every kind and field (absent: no_evidence)
service_evidence[name] := ev if {
	some name in object.keys(input.services)
	given := object.get(evidence_input, name, {})
	# spelled out, one built-in per kind: rego-cpp 1.5 loses `given` inside a comprehension that calls
	# a function, and a comprehension per kind made every decision several times slower
	ev := {
		"provenance": object.union(no_evidence.provenance, object.get(given, "provenance", {})),
		"tests": object.union(no_evidence.tests, object.get(given, "tests", {})),
		"vulns": object.union(no_evidence.vulns, object.get(given, "vulns", {})),
		"sbom": object.union(no_evidence.sbom, object.get(given, "sbom", {})),
	}
}

# Every evidence violation is a baseline violation (and so a `deny` message). They are gathered
# in `evidence_violation` first so tests can evaluate them alone.
violation contains v if {
	some v in evidence_violation
}

# Fail closed: parameters that cannot be read would silently switch the rules off.
evidence_params_problems contains "evidence_required has no list for this environment class" if {
	not is_array(evidence_required[env_class])
}

evidence_params_problems contains msg if {
	some kind in evidence_required[env_class]
	not no_evidence[kind]
	msg := concat("", ["evidence_required lists ", sprintf("%v", [kind]), ", which is not provenance, tests, vulns or sbom"])
}

evidence_params_problems contains "max_critical_vulns has no number for this environment class" if {
	not is_number(max_critical_vulns[env_class])
}

evidence_params_problems contains "allowed_builders is not a list" if {
	not is_array(allowed_builders)
}

evidence_violation contains v if {
	some problem in evidence_params_problems
	v := {
		"msg": concat("", ["policy parameters (", env_class, "): ", problem, "; fix params.rego (see docs/POLICY.md)"]),
		"rule": "evidence-params",
		"details": {"environment": env_name, "problem": problem},
	}
}

# The newest CI test run of the artifact failed, or no test ran: it is released nowhere.
tests_message(name, tests) := msg if {
	tests.failed == 0
	msg := concat("", [
		name, ": no CI test ran against its artifact (", sprintf("%v", [tests.total]), " skipped or none); ",
		"run the tests and add the report of a green run with ", evidence_fix,
	])
} else := concat("", [
	name, ": CI tests failed (", sprintf("%v", [tests.failed]), "/", sprintf("%v", [tests.total]), "); ",
	"fix them and add the report of a green run with ", evidence_fix,
])

evidence_violation contains v if {
	some name, ev in service_evidence
	ev.tests.present
	not ev.tests.passed == true
	v := {
		"msg": tests_message(name, ev.tests),
		"rule": "evidence-tests-failed",
		"details": {"service": name, "environment": env_name, "failed": ev.tests.failed, "total": ev.tests.total},
	}
}

# More critical vulnerabilities than this environment class allows.
evidence_violation contains v if {
	limit := max_critical_vulns[env_class]
	limit >= 0
	some name, ev in service_evidence
	ev.vulns.present
	ev.vulns.critical > limit
	v := {
		"msg": concat("", [
			name, ": its artifact has ", sprintf("%v", [ev.vulns.critical]), " critical vulnerabilities; ",
			env_name, " allows at most ", sprintf("%v", [limit]), " (max_critical_vulns); ",
			"fix or upgrade the affected packages and add the new scan with ", evidence_fix,
		]),
		"rule": "evidence-critical-vulns",
		"details": {"service": name, "environment": env_name, "critical": ev.vulns.critical, "limit": limit},
	}
}

# Built by a builder the organisation does not allow.
evidence_violation contains v if {
	count(allowed_builders) > 0
	some name, ev in service_evidence
	some builder in ev.provenance.builders
	not builder in allowed_builders
	v := {
		"msg": concat("", [
			name, ": its artifact was built by ", builder, ", which is not an allowed builder (allowed_builders); ",
			"rebuild it on an allowed builder and add that provenance with ", evidence_fix,
		]),
		"rule": "evidence-builder",
		"details": {"service": name, "environment": env_name, "builder": builder},
	}
}

# Evidence this environment class requires is absent.
evidence_violation contains v if {
	some kind in evidence_required[env_class]
	label := evidence_kinds[kind]
	some name, ev in service_evidence
	not ev[kind].present == true
	v := {
		"msg": concat("", [
			name, ": no ", label[0], " for its artifact, which ", env_name, " requires (evidence_required); ",
			"add ", label[1], " with ", evidence_fix,
		]),
		"rule": "evidence-required",
		"details": {"service": name, "environment": env_name, "kind": kind},
	}
}
