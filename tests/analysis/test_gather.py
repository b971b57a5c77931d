"""The pure part of the analysis I/O edge: tenant slices without a baseline of their own."""

from __future__ import annotations

from primum.app.gather import pooled_slice_baselines
from primum.core.analysis.data import MeasurementData, MetricData, Samples
from primum.core.analysis.judge import judge
from primum.core.model.analysis import AnalysisSettings, MetricKind, MetricSpec


def data_with(slices: dict[str, tuple[Samples, Samples]]) -> MeasurementData:
    baseline = Samples(values=[0.01] * 300, source="baseline all")
    canary = Samples(values=[0.01] * 100, source="canary all")
    return MeasurementData(start=0, end=10, baseline_version="b", canary_version="c",
                           metrics={"latency": MetricData(metric="latency", baseline=baseline, canary=canary,
                                                          slices=slices)})


def test_a_slice_without_baseline_traffic_is_compared_with_every_tenants_baseline():
    pinned = (Samples(values=[], source="baseline clinic-a"), Samples(values=[0.2] * 40, source="canary clinic-a"))
    shared = (Samples(values=[0.01] * 30, source="baseline clinic-b"),
              Samples(values=[0.01] * 30, source="canary clinic-b"))
    out = pooled_slice_baselines(data_with({"clinic-a": pinned, "clinic-b": shared}), min_slice_samples=15)
    base_a, canary_a = out.metrics["latency"].slices["clinic-a"]
    assert len(base_a.values) == 300 and base_a.source.startswith("all tenants (tenant clinic-a had 0 baseline")
    assert canary_a.source == "canary clinic-a"
    assert out.metrics["latency"].slices["clinic-b"] == shared  # enough of its own: unchanged


def test_with_tenant_affinity_a_regressed_pinned_tenant_still_fails_the_canary():
    """A clinic that rides the canary only (tenant affinity) has no baseline slice of its own: without
    pooling it would be skipped; with it, its regression fails the canary."""
    slices = {"clinic-a": (Samples(values=[]), Samples(values=[0.3] * 40)),
              "clinic-b": (Samples(values=[0.01] * 100), Samples(values=[]))}
    settings = AnalysisSettings(metrics=[MetricSpec(name="latency", kind=MetricKind.latency, critical=True)])
    raw = judge(settings, data_with(slices))
    pooled = judge(settings, pooled_slice_baselines(data_with(slices), settings.min_slice_samples))
    assert raw.outcome.value == "Successful"  # the aggregate canary above is healthy
    assert pooled.outcome.value == "Failed" and "clinic-a" in pooled.reason


def test_proportions_count_their_totals():
    slices = {"clinic-a": (Samples(events=0, total=3), Samples(events=5, total=40))}
    data = data_with({})
    data.metrics["errors"] = MetricData(metric="errors", baseline=Samples(events=1, total=400),
                                        canary=Samples(events=5, total=100), slices=slices)
    out = pooled_slice_baselines(data, min_slice_samples=15)
    assert out.metrics["errors"].slices["clinic-a"][0].total == 400


def test_the_early_look_fetches_only_its_metrics_over_all_traffic(monkeypatch):
    """At every tick of a window the controller measures its partial window for the early look: only the
    metrics that look reads and no tenant slices, so looking once a second stays cheap."""
    from primum.app import gather
    from primum.core.model.analysis import CommandSource
    from tests.engine.estate_fixture import estate
    from tests.engine.test_decide import status_for
    from tests.engine.world import World, ref

    world = World(estate())
    world.deploy("staging", "sched", ref("sched", "1.0"))
    item = status_for(world, {"sched": ref("sched", "2.0")}, envs=["staging"]).items[0]
    queue = MetricSpec(name="queue", kind=MetricKind.value, source=CommandSource(argv=["echo", "1"]))
    item.analysis = AnalysisSettings(metrics=[*AnalysisSettings().metrics, queue])
    seen = {}

    def fake_collect(settings, **kw):
        seen.update(metrics=[m.name for m in settings.metrics], **kw)
        return MeasurementData(start=kw["start"], end=kw["end"], baseline_version=None, canary_version="c")

    monkeypatch.setattr(gather, "collect", fake_collect)
    gather.measure_early(world.estate, item, "http://127.0.0.1:1", 10.0, 14.0)
    assert seen["metrics"] == ["error-rate", "latency"] and seen["tenants"] == []
    assert (seen["start"], seen["end"], seen["slo_error_rate"]) == (10.0, 14.0, item.slo.error_rate)
