"""JUnit XML (parsed with defusedxml) -> a test-result v0.1 statement.

Only test names are kept, never failure messages, stack traces or ``system-out`` (they may carry
data). A run in which no test ran (none, or all skipped) is FAILED: an empty run is never a pass.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element

from primum.adapters.evidence.ingest.base import Format, Source, local_name
from primum.core.evidence import statements as st


def detect(root: Element) -> bool:
    """A report whose root is ``testsuites`` or ``testsuite``."""
    return local_name(root.tag) in ("testsuites", "testsuite")


def ingest(src: Source) -> tuple[st.Statement, dict[str, Any]]:
    """A test-result statement: each test case passed, failed or skipped; an empty run is FAILED."""
    path, root, subject, file_sha256 = src.path, src.doc, src.subject, src.file_sha256
    passed: list[str] = []
    failed: list[str] = []
    skipped = 0
    for element in root.iter():
        tag = local_name(element.tag)
        if tag == "testcase":
            name = element.get("name") or "(unnamed)"
            classname = element.get("classname") or ""
            full = f"{classname}.{name}" if classname else name
            children = {local_name(c.tag) for c in element}
            if children & {"failure", "error"}:
                failed.append(full)
            elif "skipped" in children:
                skipped += 1
            else:
                passed.append(full)
        elif tag == "testsuite" and any(local_name(c.tag) in ("failure", "error") for c in element):
            # an error outside any test case (a suite that did not load): the suite failed
            failed.append(element.get("name") or "(unnamed suite)")
    ran = len(passed) + len(failed)
    result = "FAILED" if failed or ran == 0 else "PASSED"
    stmt = st.suite_result_statement(
        [dict(subject)], result=result,
        configuration=[{"name": path.name, "digest": {"sha256": file_sha256}}],
        passed_tests=passed, failed_tests=failed)
    summary: dict[str, Any] = {"result": result, "total": ran + skipped, "passed": len(passed),
                               "failed": len(failed), "skipped": skipped}
    if ran == 0:
        summary["note"] = "no tests ran"
    return stmt, summary


FORMAT = Format(name="junit", syntax="xml", slot="tests", detect=detect, ingest=ingest)
