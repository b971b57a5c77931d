"""Router configuration changes become the rollout's events (issue 13, point 1): weights, counts, keys; no tenant."""

from __future__ import annotations

from primum.app.controller import route_change_events
from primum.core.model.actions import RouteChange


def test_each_change_is_one_event_with_its_fence_seq_and_weights() -> None:
    pushed = RouteChange(cause="route", fence=12, seq=40, weights={"aaaaaaaaaaa1": 75, "bbbbbbbbbbb2": 25},
                         effective={"aaaaaaaaaaa1": 75, "bbbbbbbbbbb2": 25},
                         instances={"aaaaaaaaaaa1": 2, "bbbbbbbbbbb2": 1})
    failover = RouteChange(cause="failover", fence=12, seq=40, weights=pushed.weights,
                           effective={"aaaaaaaaaaa1": 100, "bbbbbbbbbbb2": 0}, failed_over=("bbbbbbbbbbb2",))
    events = route_change_events("prod", "scheduling-api", [pushed, failover])
    assert [e.kind for e in events] == ["router_config", "router_failover"]
    assert all((e.env, e.service) == ("prod", "scheduling-api") for e in events)
    assert events[0].message == ("router prod/scheduling-api configured (route, fence 12, seq 40): weights "
                                 "{'aaaaaaaaaaa1': 75, 'bbbbbbbbbbb2': 25}, effective {'aaaaaaaaaaa1': 75, "
                                 "'bbbbbbbbbbb2': 25}, instances {'aaaaaaaaaaa1': 2, 'bbbbbbbbbbb2': 1}")
    assert "bbbbbbbbbbb2 down, effective {'aaaaaaaaaaa1': 100, 'bbbbbbbbbbb2': 0}" in events[1].message
    assert events[1].data is not None and events[1].data["failed_over"] == ["bbbbbbbbbbb2"]
    assert events[0].data == pushed.model_dump(mode="json")
    assert route_change_events("prod", "scheduling-api", []) == []
