"""A client of HAProxy's Runtime API on its admin (stats) socket, and parsers of what it answers.

One command per connection (HAProxy's non-interactive mode: it answers and closes), over a plain
Unix socket with a timeout; no ``socat``. Every failure is a :class:`TargetError` naming the socket,
the estate field that declares it and the fix: an unreachable socket is never read as "nothing to do".
"""

from __future__ import annotations

import csv
import io
import socket
from dataclasses import dataclass

from primum.adapters.targets.base import TargetError

TIMEOUT_S = 5.0
MAX_ANSWER = 8 * 1024 * 1024

# srv_op_state (HAProxy's SRV_ST_*) and srv_admin_state bits (SRV_ADMF_*)
OP_RUNNING = 2
# forced, inherited, resolution, hostname maint; not 0x04 (CMAINT: `disabled` in the configuration), which
# HAProxy 2.6 keeps showing after `set server ... state ready` has put the server back in service
ADMIN_MAINT = 0x01 | 0x02 | 0x20 | 0x40
ADMIN_DRAIN = 0x08 | 0x10  # forced, inherited drain


@dataclass(frozen=True)
class ServerState:
    """One server line of ``show servers state`` (and ``show stat`` counters, where read)."""

    name: str
    addr: str
    port: int
    op_state: int
    admin_state: int
    weight: int
    sessions: int = 0  # current sessions (show stat scur)
    total: int = 0  # cumulative sessions (show stat stot)
    status: str = ""  # show stat status, e.g. UP, DOWN, MAINT, DRAIN
    check: str = ""  # show stat check_status, e.g. L7OK, L4CON; empty without health checks

    @property
    def maint(self) -> bool:
        return bool(self.admin_state & ADMIN_MAINT)

    @property
    def drain(self) -> bool:
        return bool(self.admin_state & ADMIN_DRAIN)

    @property
    def up(self) -> bool:
        """Running, not in maintenance, and (with health checks) its last check passed: HAProxy may report a
        server leaving maintenance as running before its first check has answered."""
        checked = not self.check or self.check.removeprefix("* ").endswith("OK")
        return self.op_state == OP_RUNNING and not self.maint and checked


class RuntimeApi:
    """Commands to one HAProxy process through its admin socket. ``where`` names the estate field."""

    def __init__(self, path: str, where: str, timeout: float = TIMEOUT_S):
        self.path = path
        self.where = where
        self.timeout = timeout

    def command(self, line: str) -> str:
        """Send one command, return HAProxy's whole answer."""
        if "\n" in line or ";" in line:
            raise TargetError(f"refusing a Runtime API command with a newline or ';': {line!r}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            try:
                sock.connect(self.path)
            except OSError as e:
                raise TargetError(
                    f"HAProxy admin socket {self.path} ({self.where}) cannot be reached: {e.strerror or e}; "
                    f"fix: start haproxy with `stats socket {self.path} level admin` in its global section, "
                    f"or correct {self.where} in the estate") from None
            sock.sendall(line.encode() + b"\n")
            chunks: list[bytes] = []
            size = 0
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
                size += len(data)
                if size > MAX_ANSWER:
                    raise TargetError(f"HAProxy admin socket {self.path}: the answer to {line!r} exceeds "
                                      f"{MAX_ANSWER} bytes")
        except TimeoutError:
            raise TargetError(f"HAProxy admin socket {self.path} ({self.where}) did not answer {line!r} within "
                              f"{self.timeout:g}s; fix: check that haproxy is not overloaded or stopped") from None
        except OSError as e:
            raise TargetError(f"HAProxy admin socket {self.path} ({self.where}): {line!r} failed: {e}") from None
        finally:
            sock.close()
        return b"".join(chunks).decode(errors="replace")

    def set(self, line: str) -> None:
        """A command that answers nothing on success; anything else is HAProxy's error message."""
        answer = self.command(line).strip()
        if answer:
            raise TargetError(f"HAProxy refused {line!r}: {answer}{_hint(answer, self.where)}")

    def set_addr(self, backend: str, server: str, addr: str, port: int) -> None:
        line = f"set server {backend}/{server} addr {addr} port {port}"
        answer = self.command(line).strip()
        if "changed" not in answer and "no need to change" not in answer:
            raise TargetError(f"HAProxy refused {line!r}: {answer or 'no answer'}{_hint(answer, self.where)}")

    def servers(self, backend: str) -> dict[str, ServerState]:
        """The backend's servers: ``show servers state`` merged with ``show stat`` session counters."""
        state = self.command(f"show servers state {backend}")
        if not state.startswith("1\n"):
            raise TargetError(f"HAProxy could not show backend {backend!r}: {state.strip() or 'no answer'}"
                              f"{_hint(state, self.where)}")
        servers = parse_servers_state(state)
        stats = parse_stat(self.command(f"show stat {backend} 4 -1"))
        merged = {}
        for name, srv in servers.items():
            row = stats.get(name, {})
            merged[name] = ServerState(srv.name, srv.addr, srv.port, srv.op_state, srv.admin_state, srv.weight,
                                       sessions=_int(row.get("scur")), total=_int(row.get("stot")),
                                       status=row.get("status", ""), check=row.get("check_status", ""))
        return merged


def _hint(answer: str, where: str) -> str:
    if "No such backend" in answer or "Can't find backend" in answer:
        return "; fix: name a backend of the haproxy configuration in target.backend"
    if "No such server" in answer:
        return "; fix: every name in target.slots must be a `server` line of the backend"
    return ""


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def parse_servers_state(text: str) -> dict[str, ServerState]:
    """Parse ``show servers state`` (format version 1: a ``#`` header naming the columns)."""
    lines = text.splitlines()
    header = next((ln[2:].split() for ln in lines if ln.startswith("# ")), None)
    if header is None or "srv_name" not in header:
        raise TargetError(f"unexpected `show servers state` answer (no header): {text[:200]!r}")
    out: dict[str, ServerState] = {}
    for ln in lines[1:]:
        if not ln.strip() or ln.startswith("#"):
            continue
        row = dict(zip(header, ln.split(), strict=False))
        try:
            out[row["srv_name"]] = ServerState(
                name=row["srv_name"], addr=row["srv_addr"], port=int(row.get("srv_port", "0")),
                op_state=int(row["srv_op_state"]), admin_state=int(row["srv_admin_state"]),
                weight=int(row["srv_uweight"]))
        except (KeyError, ValueError) as e:
            raise TargetError(f"unexpected `show servers state` line {ln!r}: {e}") from None
    return out


def parse_stat(text: str) -> dict[str, dict[str, str]]:
    """Parse ``show stat`` CSV into rows by server name (``svname``)."""
    body = text.lstrip("# ")
    reader = csv.DictReader(io.StringIO(body))
    return {row["svname"]: row for row in reader if row.get("svname")}
