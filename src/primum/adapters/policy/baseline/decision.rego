# The decision primum queries (entrypoint data.primum.release.decision).
# If any part is undefined the whole decision is undefined, and primum denies.
package primum.release

import rego.v1

decision := {
	"class": class,
	"risk_class": risk_class,
	"service_classes": service_class,
	"reasons": service_reasons,
	"requirements": requirements,
	"deny": deny,
	"warn": warn,
	"violation": violation,
}
