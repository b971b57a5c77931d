"""Use cases shared by every front end (CLI now, API and web later): submit, promote,
abort, retry, status, history. No business decisions here: those live in the engine."""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from primum.adapters.store.records import EventRecord, NewEvent, NewRollout, RolloutRecord
from primum.adapters.store.repository import Store
from primum.app.identity import Caller, identify, may_operate, may_submit, sign, snapshot
from primum.core.errors import NotAllowed, NotFound
from primum.core.governance.signatures import Claim, signed_data
from primum.core.model.errors import InputError
from primum.core.model.jsonfile import parse_json
from primum.core.model.rollout import TERMINAL, RolloutPhase, RolloutStatus
from primum.core.model.summary import release_summary

if TYPE_CHECKING:
    from primum.core.model.estate import Estate
    from primum.core.model.validate import LoadedRelease

# Submitting and retrying import the planner and the estate's validation when they run: `primum status`
# and `history` only read rollouts, and start faster without them (bench/cli_startup.py).


def primum_home() -> Path:
    home = Path(os.environ.get("PRIMUM_HOME", ".primum")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def current_user() -> str:
    return os.environ.get("PRIMUM_USER") or getpass.getuser()




@dataclass(frozen=True)
class Submitted:
    record: RolloutRecord
    created: bool


class ReleaseService:
    def __init__(self, store: Store, clock: Any = time.time):
        self.store = store
        self.clock = clock

    # ---------------------------------------------------------------- submit

    def submit(self, release_file: str | Path, estate: Estate, until_env: str | None = None,
               actor: str | None = None, scan: Sequence[str | Path] = (), caller: Caller | None = None) -> Submitted:
        """Submit a release. Its file (and ``scan``: the estate file, infrastructure files) is scanned for
        committed secrets; findings go into the stored release, where the policy denies it."""
        from primum.core.model.validate import load_release

        loaded = load_release(release_file, estate)
        return self.submit_loaded(loaded, estate, until_env, actor, secrets=scan_for_secrets([release_file, *scan]),
                                  caller=caller)

    def submit_loaded(self, loaded: LoadedRelease, estate: Estate, until_env: str | None = None,
                      actor: str | None = None, secrets: Sequence[dict[str, Any]] = (),
                      caller: Caller | None = None) -> Submitted:
        """Submit a loaded release. With an identities file, the submitter is the enrolled user whose key
        (``caller``) signs, and the file's content is recorded with the release (the identities in force
        for every later decision on it); without one, nobody can approve or operate it."""
        from primum.core.engine.planner import plan, promotion_path
        from primum.core.model.release import canonical_digest

        now = self.clock()
        identities, recorded = snapshot(estate.governance.identities)
        proof: dict[str, Any] = {}
        if identities is not None and recorded is not None:
            if caller is None:
                raise NotAllowed(f"estate {estate.name} has an identities file, so a release is submitted by a "
                                 "person who signs: pass --key FILE or set $PRIMUM_KEY")
            who = identities.identify(caller.key.keyid, caller.asserted or actor,
                                      source=f"the identities file {recorded['file']}")
            refused = may_submit(identities, who)
            if refused is not None:
                raise NotAllowed(f"{who} may not submit {loaded.release.id}: {who} {refused} (identities file "
                                 f"{recorded['file']})")
            proof = {"identities_digest": recorded["digest"], **signed_data(sign(
                caller, Claim(loaded.release.id, "submit", who, loaded.digest, now)))}
        else:
            who = actor or current_user()
            proof = {"proven": False}
        path = promotion_path(estate, until_env)
        status = plan(estate, loaded.release, loaded.digest, loaded.versions, path, now)
        new = NewRollout(
            id=loaded.release.id, digest=loaded.digest, estate_name=estate.name,
            estate_digest=canonical_digest(estate), services=tuple(sorted(loaded.release.services)),
            estate=estate.model_dump(mode="json", by_alias=True),
            release={"release": loaded.release.model_dump(mode="json", by_alias=True),
                     "versions": {k: v.model_dump(mode="json") for k, v in loaded.versions.items()},
                     "environments": path, "file": loaded.file, "secrets": list(secrets),
                     **({"identities": recorded} if recorded is not None else {})},
            status=status.model_dump(mode="json"),
        )
        record, created = self.store.create_rollout(new, now)
        if created:
            self.store.add_events(record.id, [NewEvent(
                kind="submitted", message=f"release {record.id} ({record.digest[:19]}) submitted by "
                f"{who} for {' -> '.join(path)}",
                data={"actor": who, "digest": record.digest, **proof})], now)
        return Submitted(record, created)

    # -------------------------------------------------------------- commands

    def get(self, rollout_id: str) -> RolloutRecord:
        record = self.store.get_rollout(rollout_id)
        if record is None:
            raise NotFound(f"no release with id {rollout_id!r}; `primum history` lists them")
        return record

    def command(self, rollout_id: str, kind: str, caller: Caller | None = None) -> None:
        """Queue a signed promote, abort or pause, by an operator or release manager of the release's services."""
        record = self.get(rollout_id)
        if record.phase in {p.value for p in TERMINAL}:
            raise NotAllowed(f"release {rollout_id} already {record.phase}; nothing to {kind}")
        now = self.clock()
        actor, envelope = self.authorized(record, kind, caller, now)  # who asks comes first: no state to strangers
        if kind == "pause" and record.phase == RolloutPhase.pending.value:
            raise NotAllowed(f"release {rollout_id} has not started; nothing to pause (abort it, or pause it once "
                             "it runs)")
        self.store.add_command(rollout_id, kind, actor, now, payload={"envelope": envelope}, event=NewEvent(
            kind="command", message=f"{kind} requested by {actor}",
            data={"actor": actor, "command": kind, "digest": record.digest, **signed_data(envelope)}))

    def authorized(self, record: RolloutRecord, kind: str, caller: Caller | None, now: float
                   ) -> tuple[str, dict[str, Any]]:
        """The proven actor of ``kind`` on ``record`` (refused unless they may operate it) and their envelope
        over the command at ``now``."""
        actor, identities = identify(record.release, caller, record.id)
        refused = may_operate(identities, actor, record.services)
        if refused is not None:
            raise NotAllowed(f"{actor} may not {kind} {record.id}: {actor} {refused}")
        assert caller is not None  # identify refused a missing caller
        return actor, sign(caller, Claim(record.id, kind, actor, record.digest, now))

    def promote(self, rollout_id: str, caller: Caller | None = None) -> None:
        self.command(rollout_id, "promote", caller)

    def abort(self, rollout_id: str, caller: Caller | None = None) -> None:
        self.command(rollout_id, "abort", caller)

    def pause(self, rollout_id: str, caller: Caller | None = None) -> None:
        """Hold a running release at its current step (``promote`` resumes it); refused for a release that
        has not started, so a person sees at once that there is nothing to pause."""
        self.command(rollout_id, "pause", caller)

    def retry(self, rollout_id: str, caller: Caller | None = None) -> RolloutRecord:
        """Start a finished (rolled back or failed) release again from its first environment.

        Environments and services that already run the release's versions are
        skipped, so a retry continues where the release stopped.
        """
        record = self.get(rollout_id)
        if record.phase not in (RolloutPhase.rolled_back.value, RolloutPhase.failed.value):
            raise NotAllowed(f"release {rollout_id} is {record.phase}; only a rolled back or failed release "
                             "can be retried (abort it first)")
        from primum.core.engine.planner import plan
        from primum.core.model.actions import VersionRef
        from primum.core.model.estate import Estate
        from primum.core.model.release import Release

        estate = Estate.model_validate(record.estate)
        release = Release.model_validate(record.release["release"])
        versions = {k: VersionRef.model_validate(v) for k, v in record.release["versions"].items()}
        now = self.clock()
        who, envelope = self.authorized(record, "retry", caller, now)
        status = plan(estate, release, record.digest, versions, record.release["environments"], now)
        event = NewEvent(kind="retried", message=f"retried by {who}",
                         data={"actor": who, "digest": record.digest, **signed_data(envelope)})
        return self.store.reset(rollout_id, status=status.model_dump(mode="json"), phase="pending", now=now,
                                event=event)

    # --------------------------------------------------------------- queries

    def status(self, rollout_id: str) -> tuple[RolloutRecord, RolloutStatus]:
        record = self.get(rollout_id)
        return record, RolloutStatus.model_validate(record.status)

    def analyses(self, rollout_id: str) -> list[EventRecord]:
        """Every measurement of a release, oldest first; each one's id is its event id."""
        self.get(rollout_id)
        return self.store.events_of_kind(rollout_id, "analysis")

    def analysis(self, ref: str) -> EventRecord:
        """One measurement's stored report: by id, or a release id for its most recent one."""
        if ref.isdigit():
            event = self.store.event(int(ref))
            if event is None or event.kind != "analysis":
                raise NotFound(f"no analysis with id {ref}; `primum analysis list RELEASE` lists them")
            return event
        events = self.analyses(ref)
        if not events:
            raise NotFound(f"release {ref} has no analysis yet")
        return events[-1]

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        return [summary(r) for r in self.store.list_rollouts(limit=limit)]


def summary(record: RolloutRecord) -> dict[str, Any]:
    """A release as `primum history --output json` prints it."""
    return release_summary(release_id=record.id, digest=record.digest, phase=record.phase,
                           estate_name=record.estate_name, created_at=record.created_at, status=record.status)


def scan_for_secrets(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Committed secrets in these files: file, line and type only (never the value or a hash of it)."""
    from primum.adapters.evidence.scan import scan_paths

    report = scan_paths([p for p in paths if Path(p).is_file()])
    return list(report.as_policy_input()["secrets"])


def resolve_estate(explicit: str | None, home: Path) -> tuple[Estate, str]:
    """The estate a command works on: --estate, else $PRIMUM_ESTATE, else the one `primum up` runs,
    else ./estate.yaml."""
    path = explicit or os.environ.get("PRIMUM_ESTATE")
    if not path:
        up = home / "up.json"
        if up.is_file():  # written by `primum up`; a damaged one is an input error, not a crash
            marker = parse_json(up.read_bytes(), str(up), "stop `primum up` and start it again, or pass --estate")
            path = marker.get("estate") if isinstance(marker, dict) else None
            if not isinstance(path, str) or not path:
                raise InputError.single(str(up), "names no estate file", "stop `primum up` and start it again, "
                                        "or pass --estate FILE", path="estate")
    path = path or "estate.yaml"
    if not Path(path).is_file():
        raise InputError.single(str(path), "estate file not found",
                                "pass --estate FILE, or run `primum init` to write an example")
    from primum.app.plugins import load_plugins
    from primum.core.model.validate import load_estate

    load_plugins()
    return load_estate(path), str(path)
