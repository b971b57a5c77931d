"""The statistical canary judge: pure functions from settings and measured data to a report.

``judge(settings, data)`` classifies each metric (Kayenta's stages: missing
values, outliers, Mann-Whitney with the Hodges-Lehmann shift, effect size,
classification, weighted group scores) and, in primum mode (the default),
adds what Kayenta misses: an exact test on counts for proportions, the tail
check, a minimum sample guard, per-tenant slices with the Holm correction, and
the service's SLOs. See docs/JUDGE.md.
"""

from primum.core.analysis.judge.verdict import judge

__all__ = ["judge"]
