"""Reading a bundle: its members, in memory and never extracted, and its manifest.json, parsed and typed.

Both fail closed with ``BundleFormatError`` naming the member or the manifest field; the limits
(``MAX_MEMBERS``, ``MAX_UNCOMPRESSED``) keep a hostile tarball from exhausting memory.
"""

from __future__ import annotations

import gzip
import os
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from primum.adapters.evidence.bundle.base import FORMAT, HEX64, MANIFEST, TOP_PREFIX, BundleFormatError
from primum.core.model import jsonfile

MAX_MEMBERS = 100_000
MAX_UNCOMPRESSED = 1 << 30  # bytes of the uncompressed tar stream

_MEMBER_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+@=-]{0,254}$")


def _member_kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.isdev():
        return "device or FIFO"
    if member.issparse():
        return "sparse file"
    return f"member of type {member.type!r}"


def _check_uncompressed_size(path: Path) -> None:
    total = 0
    with gzip.open(path, "rb") as gz:
        while chunk := gz.read(1 << 20):
            total += len(chunk)
            if total > MAX_UNCOMPRESSED:
                raise BundleFormatError(f"bundle: more than {MAX_UNCOMPRESSED} bytes uncompressed; refused")


def read_members(path: str | os.PathLike[str]) -> tuple[str, dict[str, bytes]]:
    """The bundle's top directory and its files (relative path -> bytes), read in memory, never extracted.

    Refuses absolute paths, ``..`` and other unusual names, links, devices, duplicate names, more than one
    top directory, more than ``MAX_MEMBERS`` members and more than ``MAX_UNCOMPRESSED`` bytes.
    """
    path = Path(path)
    try:
        _check_uncompressed_size(path)
    except (OSError, EOFError) as exc:
        raise BundleFormatError(f"bundle: not a readable .tar.gz ({exc})") from exc
    files: dict[str, bytes] = {}
    top: str | None = None
    total = 0
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            for count, member in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    raise BundleFormatError(f"bundle: more than {MAX_MEMBERS} members; refused")
                name = member.name
                parts = name.split("/")
                if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
                    raise BundleFormatError(f"bundle member {name!r}: absolute or '..' path; refused")
                if not all(_MEMBER_PART.match(p) for p in parts):
                    raise BundleFormatError(f"bundle member {name!r}: unexpected characters in the path; refused")
                if top is None:
                    top = parts[0]
                    if not top.startswith(TOP_PREFIX):
                        raise BundleFormatError(f"bundle member {name!r}: not under a {TOP_PREFIX}<release> directory")
                elif parts[0] != top:
                    raise BundleFormatError(f"bundle member {name!r}: outside the top directory {top}/")
                if member.isdir():
                    continue
                if not member.isreg() or member.issparse():
                    raise BundleFormatError(f"bundle member {name!r}: a {_member_kind(member)}; only regular files "
                                            "are accepted")
                if len(parts) == 1:
                    raise BundleFormatError(f"bundle member {name!r}: a file in place of the top directory")
                rel = "/".join(parts[1:])
                if rel in files:
                    raise BundleFormatError(f"bundle member {name!r}: appears twice")
                total += member.size
                if total > MAX_UNCOMPRESSED:
                    raise BundleFormatError(f"bundle: more than {MAX_UNCOMPRESSED} bytes uncompressed; refused")
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
                if len(data) != member.size:
                    raise BundleFormatError(f"bundle member {name!r}: truncated")
                files[rel] = data
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleFormatError(f"bundle: not a readable .tar.gz ({exc})") from exc
    if top is None:
        raise BundleFormatError("bundle: empty archive")
    return top, files


# --- the manifest ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestEntry:
    index: int
    leaf_hash: bytes
    envelope: str | None
    proof: str
    purged_at: str | None


@dataclass(frozen=True)
class Manifest:
    release: dict[str, Any]
    log: dict[str, Any]
    generated_at: str
    release_id: str
    release_hex: str
    artifact_hexes: set[str]
    origin: str
    tree_size: int
    root_hash: bytes
    entries: list[ManifestEntry]
    files: dict[str, str]
    previous: tuple[int, bytes] | None = None  # log.previous: (tree size, root hash)


def _field(obj: Any, key: str, kind: type | tuple[type, ...], where: str, *, optional: bool = False) -> Any:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BundleFormatError(f"{MANIFEST}: {where}{key}: missing or of the wrong type")
    return value


def _hex_hash(text: str, where: str) -> bytes:
    if not HEX64.match(text):
        raise BundleFormatError(f"{where}: expected 64 lowercase hex digits")
    return bytes.fromhex(text)


def parse_manifest(data: bytes) -> Manifest:
    try:
        doc = jsonfile.loads(data)  # strict and depth-limited: a bundle comes from elsewhere
    except ValueError as exc:
        raise BundleFormatError(f"{MANIFEST}: not JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleFormatError(f"{MANIFEST}: format is not {FORMAT!r}")
    release = _field(doc, "release", dict, "")
    release_id = _field(release, "id", str, "release.")
    digest = _field(release, "digest", str, "release.")
    release_hex = _hex_hash(digest.removeprefix("sha256:"), f"{MANIFEST}: release.digest")
    artifacts = _field(release, "artifacts", dict, "release.")
    artifact_hexes = {
        _hex_hash(_field(pin, "digest", str, f"release.artifacts.{name}.").removeprefix("sha256:"),
                  f"{MANIFEST}: release.artifacts.{name}.digest").hex()
        for name, pin in artifacts.items()}
    log = _field(doc, "log", dict, "")
    entries: list[ManifestEntry] = []
    for n, raw in enumerate(_field(doc, "entries", list, "")):
        where = f"entries[{n}]."
        index = _field(raw, "index", int, where)
        entries.append(ManifestEntry(
            index=index,
            leaf_hash=_hex_hash(_field(raw, "leaf_hash", str, where), f"{MANIFEST}: {where}leaf_hash"),
            envelope=_field(raw, "envelope", str, where, optional=True),
            proof=_field(raw, "proof", str, where),
            purged_at=_field(raw, "purged_at", str, where, optional=True),
        ))
    files = _field(doc, "files", dict, "")
    if not all(isinstance(v, str) for v in files.values()):
        raise BundleFormatError(f"{MANIFEST}: files: every value must be a sha256 hex string")
    previous: tuple[int, bytes] | None = None
    if "previous" in log:
        raw_previous = _field(log, "previous", dict, "log.")
        previous_size = _field(raw_previous, "tree_size", int, "log.previous.")
        if previous_size < 0:
            raise BundleFormatError(f"{MANIFEST}: log.previous.tree_size: negative")
        previous = (previous_size, _hex_hash(_field(raw_previous, "root_hash", str, "log.previous."),
                                             f"{MANIFEST}: log.previous.root_hash"))
    return Manifest(
        release=release, log=log, generated_at=_field(doc, "generated_at", str, ""),
        release_id=release_id, release_hex=release_hex.hex(), artifact_hexes=artifact_hexes,
        origin=_field(log, "origin", str, "log."), tree_size=_field(log, "tree_size", int, "log."),
        root_hash=_hex_hash(_field(log, "root_hash", str, "log."), f"{MANIFEST}: log.root_hash"),
        entries=entries, files=files, previous=previous,
    )
