"""What every check of one measurement shares: the settings and the data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from primum.core.analysis.data import Classification, MeasurementData, MetricResult, Samples
from primum.core.analysis.judge.clean import Cleaned, clean
from primum.core.analysis.judge.explain import Subject, nodata_reason
from primum.core.analysis.judge.rows import row
from primum.core.model.analysis import AnalysisSettings, JudgeMode, MetricSpec


@dataclass(frozen=True)
class Context:
    settings: AnalysisSettings
    data: MeasurementData

    @property
    def mode(self) -> JudgeMode:
        return self.settings.mode

    @property
    def alpha(self) -> float:
        """Significance level of every test: 1 - confidence."""
        return round(1.0 - self.settings.confidence, 12)  # 0.02, not 0.020000000000000018

    def clean(self, samples: Samples | None, metric: MetricSpec) -> Cleaned:
        return clean(samples.values if samples else [], metric, self.mode)

    def nodata(self, subject: Subject, check: str, why: str, *, source: dict[str, str], skipped: bool = False,
               **fields: Any) -> MetricResult:
        """A row for a check that could not run. Kayenta: a critical metric without data fails the
        measurement; primum: it makes it inconclusive, unless ``fail_on_nodata`` makes it a failure.
        ``critical`` on a row means: this row fails the measurement on its own."""
        m = subject.metric
        kind = Classification.nodata
        if m.fail_on_nodata and not skipped and not (self.mode is JudgeMode.kayenta and m.critical):
            kind = Classification.nodata_fail
        fails = kind is Classification.nodata_fail or self.mode is JudgeMode.kayenta
        return row(subject, check, kind, nodata_reason(subject, why, kind),
                   critical=m.critical and fails and not skipped, source=source, skipped=skipped, **fields)
