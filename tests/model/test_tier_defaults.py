"""A service's analysis defaults follow its tier, and its own ``analysis:`` block composes over them."""

from __future__ import annotations

from pathlib import Path

import pytest

from primum.core.model.analysis import AnalysisSettings, critical_metrics, default_metrics, tier_metrics
from primum.core.model.errors import InputError
from primum.core.model.estate import Service
from primum.core.model.validate import load_estate

ESTATE = """\
apiVersion: primum/v1
kind: Estate
name: test-hospital
environments:
  - {name: prod, class: prod}
services:
  fhir:
    template: fhir-integration
    owner: integration
  sched:
    template: web-api
    owner: scheduling
    tier: clinical-critical
    analysis: {confidence: 0.99, min_samples: 30}
  portal:
    owner: portal
    tier: patient-facing
    data_class: phi
    analysis:
      metrics:
        - {name: latency, kind: latency, effect: {allowed_increase: 1.3}}
  erp:
    template: erp-connector
    owner: erp
  jobs:
    template: batch-job
    owner: ops
"""


def latency(settings: AnalysisSettings):
    return next(m for m in settings.metrics if m.name == "latency")


@pytest.fixture
def estate(tmp_path: Path):
    path = tmp_path / "estate.yaml"
    path.write_text(ESTATE)
    return load_estate(path)


def test_clinical_and_patient_facing_latency_is_critical(estate) -> None:
    fhir = estate.services["fhir"].analysis  # tier from its template, no analysis block
    assert fhir.metrics == critical_metrics()
    lat = latency(fhir)
    assert lat.critical and lat.effect.allowed_increase == 1.1
    assert lat.effect.min_shift == 0.002 and lat.effect.min_shift_ratio == 0.1
    assert lat.tail is not None and lat.tail.min_tail_samples == 5


def test_business_and_internal_keep_todays_defaults(estate) -> None:
    for name in ("erp", "jobs"):
        settings = estate.services[name].analysis
        assert settings == AnalysisSettings() and settings.metrics == default_metrics()
        assert not latency(settings).critical and latency(settings).effect.critical_increase == 2.0


def test_a_partial_block_keeps_the_tiers_metrics(estate) -> None:
    sched = estate.services["sched"].analysis
    assert (sched.confidence, sched.min_samples) == (0.99, 30)
    assert sched.metrics == critical_metrics()


def test_given_metrics_replace_the_tiers_metrics_whole(estate) -> None:
    portal = estate.services["portal"].analysis
    assert [m.name for m in portal.metrics] == ["latency"]  # no error-rate: the list is the service's
    assert not latency(portal).critical and latency(portal).effect.allowed_increase == 1.3


def test_in_code_too_and_a_settings_value_is_taken_as_it_is() -> None:
    assert Service(owner="o", tier="clinical-critical", data_class="phi").analysis.metrics == \
        critical_metrics()  # type: ignore[arg-type]
    given = AnalysisSettings(confidence=0.9)
    assert Service(owner="o", tier="clinical-critical", data_class="phi",  # type: ignore[arg-type]
                   analysis=given).analysis is given
    assert tier_metrics("internal") == default_metrics()


def test_a_service_survives_its_own_round_trip(estate) -> None:
    for svc in estate.services.values():
        assert Service.model_validate(svc.model_dump(mode="json", by_alias=True)) == svc


def test_errors_in_a_partial_block_still_name_their_field(tmp_path: Path) -> None:
    path = tmp_path / "estate.yaml"
    path.write_text(ESTATE.replace("confidence: 0.99", "confidence: 2"))
    with pytest.raises(InputError) as info:
        load_estate(path)
    assert [p.path for p in info.value.problems] == ["services.sched.analysis.confidence"]


def test_kayenta_mode_keeps_the_settings_it_always_had() -> None:
    svc = Service(owner="o", tier="clinical-critical", data_class="phi",  # type: ignore[arg-type]
                  analysis={"mode": "kayenta"})  # type: ignore[arg-type]
    assert svc.analysis.metrics == default_metrics()
