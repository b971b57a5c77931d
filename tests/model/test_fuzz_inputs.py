"""Fuzzing every input a user hands primum: no traceback, bounded time and memory per case (issue 13, point 4).

Generated documents go through the entry points the CLI uses: ``primum validate`` in-process (estates and
releases), ``load_identities`` (identities), ``ingest_file`` (CI evidence: SLSA provenance and DSSE,
JUnit XML, SARIF, Trivy, Grype, CycloneDX), the policy input built from a valid estate and release (what the
policy sees), and the policy bundle's reader on mutated Rego (``policy_files``, ``discover_tests``; compiling
takes seconds a case and is guarded by the forked preflight, so it is not fuzzed here). Each case is either
accepted or refused as a user error (exit 2); anything else (exit 3, any other exception) fails the test.

Documents are structured mutations of the real files (the demo's estate, releases, identities and CI
evidence, the ingest fixtures) plus text-level attacks (anchors, aliases, tags, complex keys, deep nesting,
control characters) and random text. Hypothesis runs derandomized (a fixed seed, no example database), so CI
runs the same cases every time; the counts are printed at the end (run with ``-s`` to see them).
"""

from __future__ import annotations

import copy
import json
import shutil
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import typer.main
import typer.testing
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from primum.adapters.evidence.ingest.pipeline import ingest_file
from primum.adapters.policy.files import discover_tests, policy_files, rule_heads
from primum.adapters.policy.inputs import policy_input
from primum.cli.main import app
from primum.core.errors import UserError
from primum.core.governance.identities import load_identities
from primum.core.model.validate import load_estate, load_release
from primum.demo.files import write_demo
from tests.evidence.test_ingest import FIXTURES, NOW, SUBJECT

CASE_SECONDS = 5.0  # the slowest a case may be (the largest generated documents take milliseconds)
CASE_BYTES = 64 * 1024 * 1024  # the most memory (tracemalloc peak) a case may allocate
EXAMPLES = {"estate": 200, "release": 100, "identities": 100, "json": 200, "xml": 120, "text": 150, "rego": 40}
SETTINGS = dict(deadline=timedelta(seconds=CASE_SECONDS * 2), derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])

RUN: Counter[str] = Counter()  # cases run, by input kind
REFUSED: Counter[str] = Counter()  # of which refused as user errors
SLOWEST: dict[str, float] = {"seconds": 0.0, "bytes": 0.0}


# ------------------------------------------------------------------ the files to mutate


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("fuzz") / "demo"
    write_demo(root, fast=True)
    yield root
    line = (f"fuzz inputs: {sum(RUN.values())} cases ({dict(sorted(RUN.items()))}), "
            f"{sum(REFUSED.values())} refused as user errors; slowest case {SLOWEST['seconds']:.3f} s, "
            f"largest peak {SLOWEST['bytes'] / 1e6:.1f} MB")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:  # shown even when output is captured: CI's log has it
        with capture.global_and_fixture_disabled():
            reporter.write_line("\n" + line)
    shutil.rmtree(root, ignore_errors=True)


def _load(path: Path) -> Any:
    text = path.read_text()
    return yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)


def paths_of(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into ``doc`` (mapping keys and list indexes), the document itself first."""
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += paths_of(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += paths_of(value, (*prefix, i))
    return out


# Values that broke or could break a field: out of range, wrong type, non-finite, huge, nested, templated.
NASTY = st.one_of(
    st.sampled_from([0, -1, 1, 65535, 65536, 10**20, -(10**20), 2**63, True, False, None, -0.0, 0.5,
                     float("inf"), float("-inf"), float("nan"), 1e308, "", " ", "x" * 300, "{{version}}",
                     "{{nope}}", "{artifact}", "{port}", "30s", "-5s", "0s", "1e9h", ".inf", "sha256:" + "0" * 64,
                     "prod", "staging", "canary", "rolling", "blue_green", "local", "noop", "http", "tcp",
                     "builtin", "prometheus", "web", "command", "mllp", "tls", "fhir", "latency", "errors",
                     "943 476 5919", "../../etc/passwd", "\u202e", "\x7f", [], {}, [[[[]]]], {"a": {"b": {}}}]),
    st.integers(), st.floats(), st.text(max_size=20), st.booleans(),
    st.recursive(st.none() | st.integers() | st.text(max_size=6) | st.floats(),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                 max_leaves=8),
)


def _parent(doc: Any, path: tuple[Any, ...]) -> Any | None:
    node = doc
    for part in path[:-1]:
        found = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node))
        if not found:
            return None
        node = node[part]
    return node


def mutate(doc: Any, edits: list[tuple[tuple[Any, ...], str, Any]]) -> Any:
    """``doc`` with each edit applied where its path still exists: replace, delete, add a key, or duplicate."""
    doc = copy.deepcopy(doc)
    for path, how, value in edits:
        if not path:
            doc = value if how == "replace" else doc
            continue
        parent, last = _parent(doc, path), path[-1]
        if isinstance(parent, dict) and last in parent:
            if how == "replace":
                parent[last] = value
            elif how == "delete":
                del parent[last]
            elif how == "add" and isinstance(parent[last], dict):
                parent[last][f"x-{len(parent[last])}"] = value
            else:
                parent[f"{last}-copy"] = copy.deepcopy(parent[last])
        elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
            if how == "replace":
                parent[last] = value
            elif how == "delete":
                del parent[last]
            else:
                parent.append(copy.deepcopy(parent[last]) if how == "duplicate" else value)
    return doc


def edits_of(doc: Any) -> st.SearchStrategy[list[tuple[tuple[Any, ...], str, Any]]]:
    return st.lists(st.tuples(st.sampled_from(paths_of(doc)), st.sampled_from(["replace", "delete", "add",
                                                                             "duplicate"]), NASTY),
                    min_size=1, max_size=4)


# Text-level YAML attacks inserted at a line: anchors and aliases (also recursive), tags, complex keys,
# merge keys, deep nesting, tabs, control and odd characters, a second document.
YAML_SNIPPETS = ["&a ", "*a", "&b [*b]", "!foo ", "!!python/object:os.system ", "!!binary ", "!!set ", "? [k]\n: v",
                 "<<: *a", "<<: [*a, *a]", "[" * 80, "{" * 70 + "}" * 70, "\t", "\x00", "\x1b", "\ufeff", "---",
                 "...", "%YAML 1.1", "%TAG ! tag:x,2000:", "- - - - -", ": :", "'", '"\\x', "|", ">-", "=",
                 "1" * 5000, "2024-02-30", "0x" + "f" * 40, ".nan", "~", "null", "yes", "on", "1:30:00"]


def yaml_attack(text: str) -> st.SearchStrategy[str]:
    lines = text.splitlines()
    edits = st.lists(st.tuples(st.integers(0, max(len(lines) - 1, 0)), st.integers(0, 40),
                               st.sampled_from(YAML_SNIPPETS)), min_size=1, max_size=3)

    def apply(changes: list[tuple[int, int, str]]) -> str:
        out = list(lines)
        for line, column, snippet in changes:
            at = min(column, len(out[line])) if out else 0
            if out:
                out[line] = out[line][:at] + snippet + out[line][at:]
            else:
                out.append(snippet)
        return "\n".join(out) + "\n"

    return edits.map(apply)


YAML_ALPHABET = st.sampled_from([*"abcxyz019 -:,[]{}&*!?|>'\"#%@`\n\t.=~<", "\x00", "é", "\u2028"])


# ------------------------------------------------------------------ running one case


def bounded(kind: str, call: Callable[[], None]) -> None:
    """Run one case: only a user error may escape (counted as refused); time and memory are bounded."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        call()
    except UserError:
        REFUSED[kind] += 1
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    RUN[kind] += 1
    SLOWEST["seconds"] = max(SLOWEST["seconds"], elapsed)
    SLOWEST["bytes"] = max(SLOWEST["bytes"], peak)
    assert elapsed < CASE_SECONDS, f"{kind}: a case took {elapsed:.2f} s"
    assert peak < CASE_BYTES, f"{kind}: a case allocated {peak / 1e6:.0f} MB"


class Refused(UserError):
    """``primum validate`` exited 2 (a user error, printed)."""


@pytest.fixture(scope="module", autouse=True)
def _one_command() -> Iterator[None]:
    """Build the click command of the app once: typer's runner rebuilds it on every call (70% of a case)."""
    command = typer.main.get_command(app)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", lambda _app: command)
        yield


def cli_validate(args: list[str], home: Path) -> Callable[[], None]:
    def call() -> None:
        result = CliRunner().invoke(app, ["validate", *args], env={"PRIMUM_HOME": str(home)})
        assert result.exit_code in (0, 2), f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
        assert "internal error" not in result.output, result.output
        if result.exit_code == 2:
            raise Refused(result.output)

    return call


def _ingest(path: Path) -> None:
    assert ingest_file(path, subject=SUBJECT, now=NOW).statement["subject"] == [SUBJECT]


def _identities(path: Path) -> None:
    assert load_identities(path).kind == "Identities"


def dump_yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


# ------------------------------------------------------------------ estates and releases


@pytest.fixture(scope="module")
def files(demo: Path) -> dict[str, Any]:
    """The demo's files, parsed once: the seeds of the structured mutations."""
    return {"estate": _load(demo / "estate.yaml"), "release": _load(demo / "releases" / "0-baseline.yaml"),
            "identities": _load(demo / "identities.yaml")}


@settings(max_examples=EXAMPLES["estate"], **SETTINGS)
@given(data=st.data())
def test_fuzz_estates_through_primum_validate(demo: Path, files: dict[str, Any], data: st.DataObject) -> None:
    doc = mutate(files["estate"], data.draw(edits_of(files["estate"]), label="edits"))
    text = dump_yaml(doc)
    if data.draw(st.booleans(), label="text attack"):
        text = data.draw(yaml_attack(text), label="attacked")
    path = demo / "fuzz-estate.yaml"
    path.write_text(text)
    bounded("estate", cli_validate([str(path)], demo / ".home"))


@settings(max_examples=EXAMPLES["release"], **SETTINGS)
@given(data=st.data())
def test_fuzz_releases_through_primum_validate_and_the_policy_input(demo: Path, files: dict[str, Any],
                                                                   data: st.DataObject) -> None:
    doc = mutate(files["release"], data.draw(edits_of(files["release"]), label="edits"))
    text = dump_yaml(doc)
    if data.draw(st.booleans(), label="text attack"):
        text = data.draw(yaml_attack(text), label="attacked")
    path = demo / "releases" / "fuzz-release.yaml"  # next to the real one, so its artifacts resolve
    path.write_text(text)
    estate_path = demo / "estate.yaml"
    bounded("release", cli_validate([str(path), "--estate", str(estate_path)], demo / ".home"))

    def policy_document() -> None:  # what the policy would see of an accepted release
        estate = load_estate(estate_path)
        loaded = load_release(path, estate)
        for env in estate.environment_names():
            json.dumps(policy_input(estate, loaded.release, loaded.digest, env, now=NOW), allow_nan=False)

    bounded("policy input", policy_document)


@settings(max_examples=EXAMPLES["identities"], **SETTINGS)
@given(data=st.data())
def test_fuzz_identities(demo: Path, files: dict[str, Any], data: st.DataObject) -> None:
    doc = mutate(files["identities"], data.draw(edits_of(files["identities"]), label="edits"))
    text = dump_yaml(doc)
    if data.draw(st.booleans(), label="text attack"):
        text = data.draw(yaml_attack(text), label="attacked")
    path = demo / "fuzz-identities.yaml"
    path.write_text(text)
    bounded("identities", lambda: _identities(path))


@settings(max_examples=EXAMPLES["text"], **SETTINGS)
@given(text=st.text(alphabet=YAML_ALPHABET, max_size=300), header=st.booleans())
def test_fuzz_random_yaml_text(demo: Path, text: str, header: bool) -> None:
    path = demo / "fuzz-random.yaml"
    path.write_text(("apiVersion: primum/v1\nkind: Estate\n" if header else "") + text)
    bounded("random yaml", cli_validate([str(path)], demo / ".home"))


# ------------------------------------------------------------------ CI evidence


def _ci_files(demo: Path) -> list[Path]:
    ci = sorted((demo / "ci").glob("*-1.0.0/*"))
    picked = {p.name: p for p in ci}  # one of each kind the demo writes (provenance, junit, trivy)
    return [*picked.values(), *(FIXTURES / n for n in ("codeql.sarif", "cyclonedx.json", "grype.json",
                                                        "slsa-dsse.json", "slsa-sigstore-bundle.json",
                                                        "junit-fail.xml"))]


@settings(max_examples=EXAMPLES["json"], **SETTINGS)
@given(data=st.data())
def test_fuzz_ci_json_evidence(demo: Path, data: st.DataObject) -> None:
    source = data.draw(st.sampled_from([p for p in _ci_files(demo) if p.suffix != ".xml"]), label="file")
    original = json.loads(source.read_text())
    doc = mutate(original, data.draw(edits_of(original), label="edits"))
    text = json.dumps(doc)  # NaN and Infinity included: the strict parser must refuse them
    attack = data.draw(st.sampled_from(["", "deep", "duplicate", "huge number", "long integer", "cut", "bom"]),
                       label="attack")
    if attack == "deep":
        text = text[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}"
    elif attack == "duplicate":
        text = text[:-1] + ', "x": 1, "x": 2}'
    elif attack == "huge number":
        text = text[:-1] + ', "x": 1e999}'
    elif attack == "long integer":
        text = text[:-1] + ', "x": ' + "7" * 4400 + "}"
    elif attack == "cut":
        text = text[: data.draw(st.integers(0, len(text)), label="cut at")]
    elif attack == "bom":
        text = "\ufeff" + text
    path = demo / ("fuzz" + source.suffix)
    path.write_text(text)
    bounded("ci json", lambda: _ingest(path))


XML_SNIPPETS = ['<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]>', "&a;", '<!ENTITY % p SYSTEM "file:///etc/passwd">',
                "<testsuite>" * 100, "</testsuite>", "<testcase name='x'/>", "<failure>", "\x00", "]]>",
                "<![CDATA[", "tests='-1'", "time='nan'", "failures='1e999'", "<?xml version='1.0'?>", "&#0;",
                "<testcase name='MRN: SYN00012345'/>", "ä"]


@settings(max_examples=EXAMPLES["xml"], **SETTINGS)
@given(data=st.data())
def test_fuzz_junit_xml_evidence(demo: Path, data: st.DataObject) -> None:
    source = data.draw(st.sampled_from([p for p in _ci_files(demo) if p.suffix == ".xml"]), label="file")
    text = source.read_text()
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        at = data.draw(st.integers(0, len(text)), label="at")
        if data.draw(st.booleans(), label="insert"):
            text = text[:at] + data.draw(st.sampled_from(XML_SNIPPETS) | st.text(max_size=10), label="what") + text[at:]
        else:
            text = text[:at] + text[at + data.draw(st.integers(1, 20), label="cut"):]
    path = demo / "fuzz.xml"
    path.write_text(text)
    bounded("ci xml", lambda: _ingest(path))


# ------------------------------------------------------------------ policy files


@settings(max_examples=EXAMPLES["rego"], **SETTINGS)
@given(data=st.data())
def test_fuzz_policy_files_are_read_and_scanned(demo: Path, data: st.DataObject) -> None:
    """An organisation's Rego as primum reads it before compiling: the files, their tests and rule heads."""
    org = demo / "fuzz-policy"
    shutil.rmtree(org, ignore_errors=True)
    shutil.copytree(demo / "policy", org)
    params = org / "params.rego"
    text = params.read_text()
    at = data.draw(st.integers(0, len(text)), label="at")
    params.write_text(text[:at] + data.draw(st.text(max_size=40) | st.sampled_from(
        ["test_x := true", "package", "import future.keywords", "`", '"', "#", "\x00", "[" * 500]),
        label="what") + text[at:])

    def read() -> None:
        found = policy_files(org, include_tests=True)
        discover_tests(found)
        for f in found:
            rule_heads(f.source)

    bounded("policy files", read)
