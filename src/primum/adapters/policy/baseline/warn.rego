# Baseline warnings: shown with the decision, they never block a release.
package primum.release

import rego.v1

warn contains "the release description is shorter than 10 characters: say what changes and why" if {
	count(trim_space(object.get(input.release, "description", ""))) < 10
}

warn contains msg if {
	prod
	input.environment.first == false
	input.checks.previous_environment_passed == null
	msg := concat("", ["no record that the release passed the environment before ", env_name])
}

warn contains "the release names no source_commit: its artifacts cannot be traced to a commit" if {
	prod
	object.get(input.release, "source_commit", "") == ""
}

warn contains "break-glass: approvals are bypassed (never the analysis); the change needs a retrospective review" if {
	emergency
}
