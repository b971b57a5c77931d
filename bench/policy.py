"""Policy benchmark: decisions per second through primum's full policy path.

The full path is what primum runs for every decision: ``policy_input`` (the
input document from the estate and release), ``PolicyBundle.evaluate`` (canonical
JSON and its sha256, evaluation of ``data.primum.release.decision``, shape
checks, the decision-log entry). It is measured against a bare regopy
evaluation of the same compiled policy with the same input in the same run
(``set_input`` + ``query_bundle_entrypoint``), which is the floor any Python
caller of rego-cpp pays. Figures, not assertions.

    .venv/bin/python bench/policy.py --n 2000
    .venv/bin/python bench/policy.py --n 2000 --services 1 3 5 --policy ./my-policies
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from pathlib import Path
from typing import Any

import regopy

from primum.adapters.policy import PolicyBundle, policy_files, policy_input
from primum.adapters.policy.files import entrypoint
from primum.core.governance.policy import DECISION_PATH, PARTS
from primum.core.model.estate import Estate
from primum.core.model.release import Release, canonical_digest

NOW = 1_798_761_600.0
KINDS = [  # (template-like settings) cycled over the services of the release
    {"tier": "clinical-critical", "data_class": "phi", "touches": ["integration-engine"],
     "probes": [{"name": "adt-ack", "probe": {"type": "mllp"}}],
     "strategy": {"type": "rolling", "max_unavailable": 1, "batch_analysis": "30s"}, "target": {"replicas": 2}},
    {"tier": "patient-facing", "data_class": "phi",
     "strategy": {"type": "blue_green", "preview_analysis": "30s", "post_analysis": "30s"}},
    {"tier": "business", "data_class": "pii"},
    {"tier": "internal", "data_class": "none"},
    {"tier": "clinical-critical", "data_class": "phi"},
]


def estate(n: int) -> Estate:
    return Estate.model_validate({
        "apiVersion": "primum/v1", "kind": "Estate", "name": "bench",
        "environments": [{"name": "staging", "class": "nonprod"}, {"name": "prod", "class": "prod"}],
        "services": {f"svc-{i}": {"owner": "bench", **KINDS[i % len(KINDS)]} for i in range(n)},
    })


def release(n: int) -> Release:
    return Release.model_validate({
        "apiVersion": "primum/v1", "kind": "Release", "id": "rel-bench", "description": "benchmark release",
        "ticket": "CHG-1", "source_commit": "abcdef1",
        "services": {f"svc-{i}": {"artifact": f"svc-{i}.py", "digest": "sha256:" + f"{i:064x}"} for i in range(n)},
    })


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_full(bundle: PolicyBundle, e: Estate, r: Release, n: int) -> list[float]:
    digest = canonical_digest(r)
    checks = {"previous_environment_passed": True, "required": ["unit"], "green": ["unit"]}
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        doc = policy_input(e, r, digest, "prod", now=NOW + i, checks=checks)
        decision = bundle.evaluate(doc)
        times.append(time.perf_counter() - t0)
        assert decision.error is None, decision.error
    return times


def run_bare(policy: Path | None, doc: dict[str, Any], n: int) -> list[float]:
    build = regopy.Interpreter()
    build.strict_built_in_errors = True
    for f in policy_files(policy):
        build.add_module(f.label, f.source)
    point = entrypoint(DECISION_PATH)
    compiled = build.build(None, [point, *(entrypoint(f"data.primum.release.{p}") for p in PARTS.values())])
    rego = regopy.Interpreter()
    rego.strict_built_in_errors = True
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        rego.set_input(doc)
        out = rego.query_bundle_entrypoint(compiled, point)
        _ = out.results[0].expressions[0]  # regopy parses the output's JSON when it is created
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="decisions per measurement")
    parser.add_argument("--services", type=int, nargs="+", default=[1, 3, 5], help="services the release changes")
    parser.add_argument("--policy", type=Path, default=None, help="an organisation policy directory")
    args = parser.parse_args()

    t0 = time.perf_counter()
    bundle = PolicyBundle.load(args.policy, cache=False)
    compile_ms = 1000 * (time.perf_counter() - t0)
    print(f"bundle {bundle.revision[:19]}… ({len(bundle.files)} files) compiled once in {compile_ms:.1f} ms; "
          f"regopy {regopy.__version__}")
    print(f"{'svcs':>4} {'full dec/s':>10} {'bare dec/s':>10} {'ratio':>6} "
          f"{'full p50 ms':>11} {'full p99 ms':>11} {'bare p50 ms':>11} {'bare p99 ms':>11} {'p99 ratio':>9}")
    for n_services in args.services:
        e, r = estate(n_services), release(n_services)
        doc = policy_input(e, r, canonical_digest(r), "prod", now=NOW,
                           checks={"previous_environment_passed": True, "required": ["unit"], "green": ["unit"]})
        run_full(bundle, e, r, min(50, args.n))  # warm up
        run_bare(args.policy, doc, min(50, args.n))
        gc.collect()
        full = run_full(bundle, e, r, args.n)
        bare = run_bare(args.policy, doc, args.n)
        full_rate, bare_rate = len(full) / sum(full), len(bare) / sum(bare)
        f99, b99 = 1000 * pct(full, 0.99), 1000 * pct(bare, 0.99)
        print(f"{n_services:>4} {full_rate:>10.0f} {bare_rate:>10.0f} {bare_rate / full_rate:>6.2f} "
              f"{1000 * statistics.median(full):>11.3f} {f99:>11.3f} {1000 * statistics.median(bare):>11.3f} "
              f"{b99:>11.3f} {f99 / b99:>9.2f}")
    print("full: policy_input + PolicyBundle.evaluate (canonical JSON + sha256 of the input, evaluation of "
          f"{DECISION_PATH}, shape checks, decision-log entry)\n"
          "bare: regopy set_input + query_bundle_entrypoint of the same compiled policy and input, same run; "
          "ratio: how many times slower the full path is")


if __name__ == "__main__":
    main()
