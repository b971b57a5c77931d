# Change classification.
#
# Every service the release changes gets a risk class:
#   high-impact  touches identity, integration-engine or data-schema; tier
#                patient-facing or clinical-critical; or data class phi
#   standard     pre-approved: tier business or internal, touches nothing,
#                data class none, every required check green, and the release
#                keeps the service's own (golden-path) strategy
#   normal       everything else (e.g. data class pii, a red check, a
#                strategy override)
# The release takes the most severe class over its services; a break-glass
# request (input.emergency) makes it `emergency` whatever its risk class.
package primum.release

import rego.v1


# Severity order of the risk classes.
severity := {"standard": 0, "normal": 1, "high-impact": 2}

low_tiers := {"business", "internal"}

high_impact_tiers := {"patient-facing", "clinical-critical"}

high_impact_touches := {"identity", "integration-engine", "data-schema"}

# Why a service is high-impact (an empty set: it is not).
high_impact_reasons(svc) := (touched | tier) | data if {
	touched := {concat(" ", ["touches", t]) | some t in svc.touches; t in high_impact_touches}
	tier := {concat(" ", ["tier", svc.tier]) | svc.tier in high_impact_tiers}
	data := {"data class phi" | svc.data_class == "phi"}
}

# The release-wide reason a change is not pre-approved: a required check that is not green.
red_checks := {concat(" ", ["required check", c, "is not green"]) |
	some c in input.checks.required
	not c in input.checks.green
}

# Why a service is not pre-approved (an empty set: it is standard).
normal_reasons(name, svc) := (((tier | data) | touched) | red_checks) | override if {
	tier := {concat(" ", ["tier", svc.tier, "is not pre-approved"]) | not svc.tier in low_tiers}
	data := {concat(" ", ["data class", svc.data_class]) | svc.data_class != "none"}
	touched := {concat(" ", ["touches", t]) | some t in svc.touches}
	override := {"the release overrides the service's strategy" | input.release.services[name].strategy != null}
}

# The reasons for a service's class, most severe first, and the class they give.
explain(name, svc) := ["high-impact", reasons] if {
	reasons := high_impact_reasons(svc)
	count(reasons) > 0
} else := ["normal", reasons] if {
	reasons := normal_reasons(name, svc)
	count(reasons) > 0
} else := ["standard", set()]

# service name -> [risk class, its reasons sorted]
service_explained[name] := [kind, sort([r | some r in reasons])] if {
	some name, svc in input.services
	[kind, reasons] := explain(name, svc)
}

# service name -> risk class, for every service the release changes
service_class[name] := service_explained[name][0] if {
	some name in object.keys(input.services)
}

# service name -> the reasons for its class (empty for a standard service)
service_reasons[name] := service_explained[name][1] if {
	some name in object.keys(input.services)
}

# The most severe class over the changed services.
risk_class := c if {
	top := max([severity[k] | some k in service_class])
	some c, rank in severity
	rank == top
}

default emergency := false

emergency if input.emergency == true

class := "emergency" if emergency

class := risk_class if not emergency
