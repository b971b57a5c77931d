"""primum's log output: every record passes redaction before a handler writes it.

Events are redacted where the store writes them (``adapters/store/events.py``); log lines are
redacted here, by the pure ``primum.core.evidence.redact.RedactingFilter`` on the handler.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO


class _RedactingFilter(logging.Filter):
    """``RedactingFilter``, imported when the first record arrives: a command that logs nothing does not
    load the redaction library (detect-secrets' plugins)."""

    def __init__(self) -> None:
        super().__init__()
        self._inner: logging.Filter | None = None

    def filter(self, record: logging.LogRecord) -> Any:
        if self._inner is None:
            from primum.core.evidence.redact import RedactingFilter

            self._inner = RedactingFilter()
        return self._inner.filter(record)


def configure_logging(stream: TextIO | None = None, level: int = logging.WARNING) -> logging.Handler:
    """Send primum's log records to ``stream`` (stderr) through redaction: a secret or PHI-like value in
    a log message is replaced before any handler writes it. The command line calls this at start."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_RedactingFilter())  # a handler filter sees every record, child loggers' too
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("primum")
    for old in [h for h in logger.handlers if getattr(h, "primum_redacting", False)]:
        logger.removeHandler(old)
    handler.primum_redacting = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(min(logger.level or level, level))
    logger.propagate = False
    return handler
