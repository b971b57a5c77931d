"""Stage 6: metric classifications, group scores and weights."""

from __future__ import annotations

import pytest

from primum.core.analysis.data import Classification, MetricResult
from primum.core.analysis.judge.score import configured_weights, group_scores, metric_classes, overall_score, worst

from .factories import value_metric

P, H, L, N, NF, E = (Classification.passed, Classification.high, Classification.low, Classification.nodata,
                     Classification.nodata_fail, Classification.error)


def result(metric: str, classification: Classification, *, skipped: bool = False) -> MetricResult:
    return MetricResult(metric=metric, check="x", classification=classification, reason="r", skipped=skipped)


@pytest.mark.parametrize(("found", "expected"), [
    ([P, P], P), ([P, N], N), ([N, NF], NF), ([NF, H], H), ([P, L], L), ([H, E], E), ([], N),
])
def test_worst(found: list[Classification], expected: Classification) -> None:
    assert worst(found) is expected


def test_metric_class_is_the_worst_row_that_is_not_skipped() -> None:
    rows = [result("a", P), result("a", N, skipped=True), result("b", P), result("b", H), result("c", N)]
    assert metric_classes(rows) == {"a": P, "b": H, "c": N}


def test_unnamed_groups_share_what_named_ones_leave() -> None:
    assert configured_weights(["errors", "latency", "saturation"], {"errors": 50}) == \
        {"errors": 50, "latency": 25, "saturation": 25}
    assert configured_weights(["a", "b"], {}) == {"a": 50, "b": 50}
    assert configured_weights(["a"], {"a": 30, "gone": 70}) == {"a": 30}


def test_group_score_is_passed_over_judged_with_kayentas_rules() -> None:
    metrics = [value_metric(f"m{i}", group=g) for i, g in enumerate(["a", "a", "a", "a", "b", "b"])]
    classes = {"m0": P, "m1": H, "m2": N, "m3": NF, "m4": P, "m5": P}
    groups = {g.group: g for g in group_scores(metrics, classes, {})}
    # a: Nodata is not judged, NodataFail counts as failed -> 1 passed of 3
    assert (groups["a"].passed, groups["a"].judged) == (1, 3)
    assert groups["a"].score == pytest.approx(100 / 3)
    assert (groups["b"].passed, groups["b"].judged, groups["b"].score) == (2, 2, 100.0)
    assert overall_score(list(groups.values())) == pytest.approx(round(50 * (1 / 3) + 50, 2))


def test_configured_weights_apply() -> None:
    metrics = [value_metric("e", group="errors"), value_metric("l", group="latency")]
    groups = group_scores(metrics, {"e": H, "l": P}, {"errors": 80})
    assert [(g.group, g.weight) for g in groups] == [("errors", 80.0), ("latency", 20.0)]
    assert overall_score(groups) == 20.0


def test_groups_without_judged_metrics_drop_out_and_the_rest_scale_up() -> None:
    metrics = [value_metric("e", group="errors"), value_metric("l", group="latency"),
               value_metric("s", group="saturation")]
    groups = group_scores(metrics, {"e": P, "l": N, "s": H}, {"errors": 50})
    weights = {g.group: g.weight for g in groups}
    assert weights == {"errors": pytest.approx(200 / 3), "latency": 0.0, "saturation": pytest.approx(100 / 3)}
    assert overall_score(groups) == pytest.approx(66.67)


def test_muted_metrics_are_not_scored() -> None:
    metrics = [value_metric("a"), value_metric("b", muted=True)]
    groups = group_scores(metrics, {"a": P, "b": H}, {})
    assert [(g.passed, g.judged) for g in groups] == [(1, 1)]
    assert overall_score(groups) == 100.0


def test_nothing_judged_has_no_score() -> None:
    metrics = [value_metric("a"), value_metric("b", group="other")]
    assert overall_score(group_scores(metrics, {"a": N, "b": E}, {})) is None
    assert overall_score([]) is None


def test_zero_weight_groups_alone_have_no_score() -> None:
    metrics = [value_metric("a", group="errors"), value_metric("b", group="latency")]
    groups = group_scores(metrics, {"a": N, "b": P}, {"errors": 100})
    assert overall_score(groups) is None
