"""Inputs that cannot hurt: every YAML attack of issue 13 ends in exit 2 naming the file, the line and the limit,
quickly and in little memory (core.model.yamlfile composes under limits, so nothing expands before the check)."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from primum.cli.main import app
from primum.core.model import yamlfile
from primum.core.model.errors import InputError
from primum.core.model.validate import load_estate
from primum.core.model.yamlfile import MAX_ALIASES, MAX_BYTES, MAX_DEPTH, MAX_NODES, parse_yaml
from tests.model.test_validation import ESTATE

HEADER = "apiVersion: primum/v1\nkind: Estate\nname: laughs\n"


def billion_laughs() -> str:
    """Nine levels of nine aliases each: 81 aliases, 10^9 strings once expanded."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return HEADER + "\n".join(lines) + "\n"


def merge_bomb() -> str:
    """Merge keys that copy a mapping nine times a level: PyYAML's flattening grows the key list 9^n."""
    lines = ["m0: &m0 {" + ", ".join(f"k{j}: {j}" for j in range(9)) + "}"]
    for i in range(1, 10):
        lines.append(f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 9)}]}}")
    return HEADER + "\n".join(lines) + "\n"


ATTACKS = {
    # name: (text, line, words in the message)
    "billion laughs": (billion_laughs(), 9, f"more than {MAX_NODES} values (limit {MAX_NODES})"),
    "merge-key bomb": (merge_bomb(), 8, f"more than {MAX_NODES} values (limit {MAX_NODES})"),
    "many aliases": (HEADER + "a: &a x\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n", 5,
                     f"more than {MAX_ALIASES} aliases (limit {MAX_ALIASES})"),
    "complex key": (HEADER + "services:\n  ? [a, b]\n  : {owner: x}\n", 5, "complex key"),
    "complex key in flow": (HEADER + "services: {[a]: 1}\n", 4, "complex key"),
    "500-deep flow nesting": (HEADER + "services: " + "[" * 500 + "]" * 500 + "\n", 4,
                              f"more than {MAX_DEPTH} levels deep (limit {MAX_DEPTH})"),
    "500-deep block nesting": (HEADER + "".join("  " * i + f"k{i}:\n" for i in range(500)) + "  " * 500 + "x\n",
                               4 + MAX_DEPTH - 1, f"more than {MAX_DEPTH} levels deep"),
    "deep through aliases": (HEADER + "a: &a " + "[" * 60 + "]" * 60 + "\nb: " + "[" * 10 + "*a" + "]" * 10 + "\n",
                             5, "levels deep once aliases are expanded"),
    "recursive anchor": (HEADER + "services: &s {web: *s}\n", 4, "recursive anchor"),
    "recursive sequence": (HEADER + "environments: &e [*e]\n", 4, "recursive anchor"),
    "unknown tag": (HEADER + "services: !include other.yaml\n", 4, "the tag !include is not allowed"),
    "python tag": (HEADER + "other: !!python/object/apply:os.system [true]\n", 4, "!!python/object/apply"),
    "binary tag": (HEADER + "other: !!binary bG9s\n", 4, "the tag !!binary is not allowed"),
    "impossible date": (HEADER + "created: 2024-02-30\n", 4, "cannot read this value"),
    "5000-digit integer": (HEADER + "size: " + "9" * 5000 + "\n", 4, "cannot read this value"),
    "control character": (HEADER + "name: a\x07b\n", 4, "U+0007 is not allowed"),
    "two documents": (HEADER + "---\nkind: Release\n", 4, "another document"),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_each_yaml_attack_is_refused_quickly_naming_file_line_and_limit(tmp_path, name):
    text, line, words = ATTACKS[name]
    path = tmp_path / "estate.yaml"
    path.write_text(text)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(InputError) as info:
            load_estate(path)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    problem = info.value.problems[0]
    assert words in problem.message, problem.render()
    assert problem.file == str(path) and problem.line == line, problem.render()
    assert problem.fix
    assert elapsed < 2.0 and peak < 20 * 1024 * 1024, (elapsed, peak)


@pytest.mark.parametrize("name", ["billion laughs", "merge-key bomb", "complex key", "500-deep flow nesting",
                                  "recursive anchor", "unknown tag"])
def test_primum_validate_exits_2_on_each_attack_never_3(tmp_path, name):
    path = tmp_path / "estate.yaml"
    path.write_text(ATTACKS[name][0])
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    assert f"{path}:{ATTACKS[name][1]}" in result.output.replace("\n", "")


def test_the_alias_message_says_why(tmp_path):
    text, _line, _words = ATTACKS["many aliases"]
    with pytest.raises(InputError) as info:
        parse_yaml(text, "estate.yaml")
    rendered = info.value.problems[0].render()
    assert rendered.startswith("estate.yaml:5: more than 100 aliases (limit 100)")
    assert "YAML anchors and aliases are limited to keep a file from expanding without bound" in rendered


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    path = tmp_path / "estate.yaml"
    path.write_text(ESTATE + "#" * MAX_BYTES)
    with pytest.raises(InputError) as info:
        load_estate(path)
    assert f"limit {MAX_BYTES // 1024} KiB" in info.value.problems[0].message
    monkeypatch.setattr(yamlfile, "MAX_BYTES", 10 * MAX_BYTES)  # under a larger limit the same file loads
    assert load_estate(path).name == "test-hospital"


def test_aliases_merge_keys_and_equals_within_the_limits_still_load(tmp_path):
    path = tmp_path / "estate.yaml"
    text = ESTATE.replace("  portal:\n    owner: portal\n",
                          "  portal:\n    <<: &common {owner: portal}\n    description: =\n")
    path.write_text(text + "tenant_header: x-tenant\n")
    estate = load_estate(path)
    assert estate.services["portal"].owner == "portal" and estate.services["portal"].description == "="


def test_a_directory_and_bad_utf8_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        load_estate(tmp_path)
    path = tmp_path / "estate.yaml"
    path.write_bytes(HEADER.encode() + b"description: \xff\n")
    with pytest.raises(InputError, match="not UTF-8"):
        load_estate(path)



def test_the_documented_limits_are_the_module_constants():
    from primum.core.model.jsonfile import MAX_INT_DIGITS

    docs = (Path(__file__).resolve().parents[2] / "docs" / "FILES.md").read_text()
    section = docs[docs.index("## Limits and ranges"):]
    for row, value in ((f"| {MAX_BYTES // 1024 // 1024} MiB ({MAX_BYTES // 1024} KiB) |", "MAX_BYTES"),
                       (f"| {MAX_DEPTH} levels |", "MAX_DEPTH"), (f"| {MAX_ALIASES} |", "MAX_ALIASES"),
                       (f"| {MAX_NODES} |", "MAX_NODES"), (f"| {MAX_INT_DIGITS} |", "MAX_INT_DIGITS")):
        assert row in section and value in section, (row, value)
