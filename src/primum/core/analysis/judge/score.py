"""Stage 6: from rows to metric classifications to group scores to one score.

As Kayenta's ``WeightedSumScorer``: a group's score is the percentage of its
judged metrics that passed, where a metric without data (Nodata) is not
judged and one that must have data (NodataFail) counts as failed; muted
metrics are left out. Group weights are percentages; groups the settings do
not name share what the named ones leave, equally. Groups with nothing judged
drop out and the others' weights are scaled back up to 100, so missing data
neither passes nor fails a group.
"""

from __future__ import annotations

from collections.abc import Iterable

from primum.core.analysis.data import Classification, GroupScore, MetricResult
from primum.core.model.analysis import MetricSpec

SEVERITY = {Classification.passed: 0, Classification.nodata: 1, Classification.nodata_fail: 2,
            Classification.low: 3, Classification.high: 3, Classification.error: 4}
FAILING = frozenset({Classification.high, Classification.low, Classification.nodata_fail})
JUDGED = FAILING | {Classification.passed}


def worst(classifications: Iterable[Classification]) -> Classification:
    """The most severe classification (the first of equally severe ones); Nodata for none."""
    found = list(classifications)
    return max(found, key=lambda c: SEVERITY[c]) if found else Classification.nodata


def metric_classes(results: list[MetricResult]) -> dict[str, Classification]:
    """Each metric's classification: the worst of its rows, skipped rows aside."""
    rows: dict[str, list[Classification]] = {}
    for r in results:
        rows.setdefault(r.metric, [])
        if not r.skipped:
            rows[r.metric].append(r.classification)
    return {name: worst(found) for name, found in rows.items()}


def configured_weights(groups: list[str], weights: dict[str, float]) -> dict[str, float]:
    """Each group's weight: as configured, or an equal share of what the configured ones leave."""
    unnamed = [g for g in groups if g not in weights]
    share = max(0.0, 100.0 - sum(weights.values())) / len(unnamed) if unnamed else 0.0
    return {g: weights.get(g, share) for g in groups}


def group_scores(metrics: list[MetricSpec], classes: dict[str, Classification],
                 weights: dict[str, float]) -> list[GroupScore]:
    """Scores of the groups of the scored (not muted) metrics; ``weight`` is each group's effective share
    of the total: 0 for a group with nothing judged, the others scaled to sum to 100."""
    scored = [m for m in metrics if not m.muted and m.name in classes]
    groups = list(dict.fromkeys(m.group for m in scored))
    counts = {g: [0, 0] for g in groups}  # passed, judged
    for m in scored:
        c = classes[m.name]
        if c in JUDGED:
            counts[m.group][1] += 1
            counts[m.group][0] += c is Classification.passed
    raw = configured_weights(groups, weights)
    total = sum(raw[g] for g in groups if counts[g][1])
    return [GroupScore(group=g, weight=100.0 * raw[g] / total if counts[g][1] and total > 0 else 0.0,
                       passed=counts[g][0], judged=counts[g][1],
                       score=100.0 * counts[g][0] / counts[g][1] if counts[g][1] else 0.0)
            for g in groups]


def overall_score(groups: list[GroupScore]) -> float | None:
    """The weighted sum of the group scores, rounded to 2 decimals (as Kayenta); None if nothing counts."""
    if not any(g.weight > 0 for g in groups):
        return None
    return round(sum(g.weight * g.score / 100.0 for g in groups), 2)
