"""A content-addressed cache of verified artifacts for the local runtime.

primum runs the exact bytes the release pins. Hashing a file and then
running it from its original path would leave a window in which the file
could be swapped, so the artifact is *copied* into
``$PRIMUM_HOME/artifacts/sha256-<hex>/`` while the copied bytes are hashed;
only a copy whose digest matches is kept, and that copy is what runs (and
what a restart runs, whatever happens to the original later).

Archives (``.tar.gz``, ``.tgz``, ``.tar``, ``.zip``) are also unpacked
(safely: no absolute paths, no ``..``, no links out) into ``unpacked/``, for
the ``{unpacked}`` placeholder. Zipapps (``.pyz``) and wheels (``.whl``) run
as they are: ``{python} {artifact}`` for a zipapp, ``PYTHONPATH={artifact}``
and ``{python} -m package`` for a pure-Python wheel.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from primum.core.model.actions import VersionRef

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


@dataclass(frozen=True)
class Materialized:
    artifact: Path  # the verified copy
    unpacked: Path | None  # the unpacked archive, if the artifact is one


class ArtifactError(Exception):
    """The artifact cannot be run: missing, unreadable, wrong digest or unsafe archive."""


def _hex(digest: str) -> str:
    value = digest.lower().removeprefix("sha256:")
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ArtifactError(f"not a sha256 digest: {digest}")
    return value


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def materialize(ref: VersionRef, cache: Path) -> Materialized:
    """The verified, cached copy of ``ref`` (and its unpacked tree). Raises ArtifactError."""
    expected = "sha256:" + _hex(ref.digest)
    source = Path(ref.artifact.removeprefix("file://"))
    if "://" in ref.artifact.removeprefix("file://"):
        raise ArtifactError(f"unsupported artifact URI for the local target: {ref.artifact}")
    folder = cache / f"sha256-{_hex(ref.digest)}"
    target = folder / source.name
    if target.is_file() and _hash_file(target) == expected:
        return Materialized(target, _unpack(target, folder))
    folder.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
        found = "sha256:" + h.hexdigest()
        if found != expected:
            raise ArtifactError(f"digest mismatch for {ref.artifact}: expected {expected}, found {found}")
        os.chmod(tmp_name, 0o555)
        os.replace(tmp_name, target)
    except FileNotFoundError:
        raise ArtifactError(f"digest mismatch for {ref.artifact}: expected {expected}, found no file") from None
    except OSError as exc:
        raise ArtifactError(f"artifact {ref.artifact} unreadable: {exc}") from None
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return Materialized(target, _unpack(target, folder))


def _unpack(archive: Path, folder: Path) -> Path | None:
    name = archive.name.lower()
    if not name.endswith(ARCHIVE_SUFFIXES):
        return None
    dest = folder / "unpacked"
    if dest.is_dir():
        return dest
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".unpacking-"))
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    _check_member(member)
                zf.extractall(staging)
        else:
            with tarfile.open(archive) as tf:
                # the "data" filter refuses absolute paths, '..', links out and device files
                tf.extractall(staging, filter="data")
        os.replace(staging, dest)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, ArtifactError) as exc:
        raise ArtifactError(f"cannot unpack {archive.name}: {exc}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return dest


def _check_member(member: str) -> None:
    parts = Path(member).parts
    if member.startswith(("/", "\\")) or ".." in parts:
        raise ArtifactError(f"unsafe path in archive: {member}")
