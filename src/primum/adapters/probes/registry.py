"""Probes by type: adding one is one module (its settings and its check) and one line here."""

from __future__ import annotations

from typing import Any

from primum.adapters.probes.context import Probe
from primum.adapters.probes.fhir import probe_fhir, target_fhir
from primum.adapters.probes.http import probe_http, target_http
from primum.adapters.probes.mllp import probe_mllp, target_mllp
from primum.adapters.probes.tcp import probe_tcp, target_tcp
from primum.adapters.probes.tls import probe_tls, target_tls
from primum.adapters.registry import Registry
from primum.core.model.analysis import PROBES as PROBE_SPECS
from primum.core.model.analysis import FhirProbe, HttpProbe, MllpProbe, TcpProbe, TlsProbe

PROBES: Registry[Probe[Any]] = Registry(PROBE_SPECS)
PROBES.add(HttpProbe, Probe(probe_http, target_http))
PROBES.add(FhirProbe, Probe(probe_fhir, target_fhir))
PROBES.add(MllpProbe, Probe(probe_mllp, target_mllp))
PROBES.add(TcpProbe, Probe(probe_tcp, target_tcp))
PROBES.add(TlsProbe, Probe(probe_tls, target_tls))
