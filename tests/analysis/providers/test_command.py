"""The command provider with real subprocesses (``sys.executable -c ...``)."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from primum.adapters.providers.base import ProviderError
from primum.adapters.providers.command import MINIMAL_PATH, CommandProvider
from primum.core.model.analysis import CommandSource, MetricKind, MetricSpec

from . import scope, wait_until

pytestmark = pytest.mark.slow

PY = sys.executable


def metric(code: str, *args: str, kind: MetricKind = MetricKind.value, **source: Any) -> MetricSpec:
    return MetricSpec(name="cmd", kind=kind, source=CommandSource(argv=[PY, "-c", code, *args], **source))


def fetch(spec: MetricSpec, **scope_kw: Any) -> Any:
    return CommandProvider().fetch(spec, scope(**scope_kw))


def test_one_number() -> None:
    got = fetch(metric("print(42.5)"))
    assert got.values == [42.5] and got.events is None
    assert got.source.startswith(PY) and "'print(42.5)'" in got.source


def test_several_numbers() -> None:
    got = fetch(metric("print('1 2 3'); print('4.5\\tnan')"))
    assert got.values[:4] == [1.0, 2.0, 3.0, 4.5] and math.isnan(got.values[4])


def test_proportion() -> None:
    got = fetch(metric("print('3 120')", kind=MetricKind.proportion))
    assert (got.events, got.total, got.values) == (3, 120, [])
    for bad in ("print('3')", "print('3.5 10')", "print('1 2 3')", "print('-1 10')"):
        with pytest.raises(ProviderError, match="not 'EVENTS TOTAL'"):
            fetch(metric(bad, kind=MetricKind.proportion))
    with pytest.raises(ProviderError, match="exceed all events"):
        fetch(metric("print('30 12')", kind=MetricKind.proportion))


def test_templating_and_minimal_environment() -> None:
    code = (
        "import os, sys\n"
        f"assert os.environ['PATH'] == {MINIMAL_PATH!r}, os.environ['PATH']\n"
        "assert 'HOME' not in os.environ and 'PYTEST_CURRENT_TEST' not in os.environ\n"
        "assert os.environ['WANT'] == 'v2/clinic-north/4s', os.environ['WANT']\n"
        "assert sys.argv[1:] == ['v2', 'canary', 'staging', 'scheduling-api', 'clinic-north'], sys.argv\n"
        "print(len(sys.argv))"
    )
    spec = metric(code, "{{version}}", "{{role}}", "{{env}}", "{{service}}", "{{tenant}}",
                  env={"WANT": "{{version}}/{{tenant}}/{{window}}"})
    got = fetch(spec, version="v2", tenant="clinic-north")
    assert got.values == [6.0]
    assert got.source.endswith(" v2 canary staging scheduling-api clinic-north")


def test_garbage_is_an_error_not_retried(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    code = f"open({str(counter)!r}, 'a').write('x'); print('12 abc')"
    with pytest.raises(ProviderError) as info:
        fetch(metric(code, retries=3))
    message = str(info.value)
    assert message.startswith("metric 'cmd' (command ")
    assert "'abc' is not a number" in message and "print only numbers" in message
    assert counter.read_text() == "x"
    with pytest.raises(ProviderError, match="printed nothing"):
        fetch(metric("pass"))


def test_non_zero_exit_is_retried_then_reported(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    code = (f"import sys; open({str(counter)!r}, 'a').write('x')\n"
            "sys.stderr.write('connecting\\nfatal: metrics store unreachable\\n'); sys.exit(3)")
    with pytest.raises(ProviderError) as info:
        fetch(metric(code, retries=1))
    message = str(info.value)
    assert "exited with code 3: fatal: metrics store unreachable" in message
    assert "(after 2 attempts)" in message
    assert counter.read_text() == "xx"


def test_missing_program() -> None:
    spec = MetricSpec(name="cmd", source=CommandSource(argv=["/nonexistent/metric-tool", "--x"]))
    with pytest.raises(ProviderError, match="cannot run '/nonexistent/metric-tool': not found"):
        CommandProvider().fetch(spec, scope())


def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    code = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(60)"
    )
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        fetch(metric(code, timeout=1.0, retries=0))
    elapsed = time.monotonic() - started
    assert "did not finish within 1 s and was killed" in str(info.value)
    assert elapsed < 5
    parent, child = (int(x) for x in pids.read_text().split())

    def gone(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # a zombie is dead too
        except FileNotFoundError:
            return True

    wait_until(lambda: gone(parent) and gone(child), 5, "the command and its child to be killed")
    assert os.getpgid(os.getpid()) != parent  # it ran in a group of its own
