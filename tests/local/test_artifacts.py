"""Artifact formats the local runtime runs, and the verified copy it runs them from."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipapp
import zipfile
from pathlib import Path

import pytest

from primum.adapters.targets.local.artifacts import ArtifactError, materialize
from primum.core.model.actions import VersionRef

from . import helpers as H

home = H.home
runtime = H.runtime


def spec_with(command, env=None):
    return H.make_spec().model_copy(update={"command": tuple(command), "env_vars": dict(env or {})})


def pin(path: Path, label: str) -> VersionRef:
    return VersionRef(digest="sha256:" + hashlib.sha256(path.read_bytes()).hexdigest(), artifact=str(path),
                      label=label)


def service_source(variant: str) -> str:
    return H.SERVICE_TEMPLATE.format(variant=variant, prelude="")


def make_zipapp(tmp: Path) -> Path:
    src = tmp / "zipapp-src"
    src.mkdir()
    (src / "__main__.py").write_text(service_source("zipapp"))
    out = tmp / "scheduling.pyz"
    zipapp.create_archive(src, out)
    return out


def make_tarball(tmp: Path) -> Path:
    out = tmp / "scheduling-2.1.0.tar.gz"
    data = service_source("tarball").encode()
    with tarfile.open(out, "w:gz") as tf:
        info = tarfile.TarInfo("app/server.py")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return out


def make_wheel(tmp: Path) -> Path:
    out = tmp / "scheduling_svc-2.1.0-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("scheduling_svc/__init__.py", "")
        zf.writestr("scheduling_svc/__main__.py", service_source("wheel"))
        zf.writestr("scheduling_svc-2.1.0.dist-info/METADATA", "Name: scheduling-svc\nVersion: 2.1.0\n")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind, command, env", [
    ("zipapp", ("{python}", "{artifact}", "--port", "{port}"), {}),
    ("tarball", ("{python}", "{unpacked}/app/server.py", "--port", "{port}"), {}),
    ("wheel", ("{python}", "-m", "scheduling_svc", "--port", "{port}"), {"PYTHONPATH": "{artifact}"}),
])
def test_each_artifact_format_runs(runtime, tmp_path, kind, command, env):
    maker = {"zipapp": make_zipapp, "tarball": make_tarball, "wheel": make_wheel}[kind]
    version = pin(maker(tmp_path), kind)
    spec = spec_with(command, env)
    runtime.ensure_instances(spec, version, 1)
    obs = H.wait_for(lambda: (o := runtime.observe(spec).get(version.key)) and o.ready == 1 and o, timeout=20,
                     what=f"{kind} ready")
    assert obs.failed == 0 and obs.error is None


def test_the_verified_copy_is_what_runs_even_if_the_original_changes(tmp_path):
    original = tmp_path / "svc.py"
    original.write_text("print('v1')\n")
    version = pin(original, "1")
    cache = tmp_path / "cache"
    first = materialize(version, cache)
    assert first.artifact.read_text() == "print('v1')\n" and first.artifact != original
    original.write_text("print('tampered')\n")  # swapped after the release was pinned
    again = materialize(version, cache)
    assert again.artifact.read_text() == "print('v1')\n"  # the cached, verified bytes
    fresh = tmp_path / "cache2"
    with pytest.raises(ArtifactError, match="digest mismatch"):
        materialize(version, fresh)  # a cache that never saw v1 refuses the tampered file
    assert not any(fresh.rglob("svc.py"))


def test_unsafe_archives_are_refused(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../etc/escape.txt", "x")
    with pytest.raises(ArtifactError, match="unsafe path"):
        materialize(pin(evil, "evil"), tmp_path / "cache")
    bad_tar = tmp_path / "evil.tar"
    with tarfile.open(bad_tar, "w") as tf:
        info = tarfile.TarInfo("../../outside.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ArtifactError, match="cannot unpack"):
        materialize(pin(bad_tar, "evil"), tmp_path / "cache")


def test_unpacked_placeholder_needs_an_archive(runtime, tmp_path):
    version = H.write_artifact(tmp_path, "plain")
    spec = spec_with(("{python}", "{unpacked}/x.py", "--port", "{port}"))
    runtime.ensure_instances(spec, version, 1)
    obs = runtime.observe(spec)[version.key]
    assert obs.failed and "not an archive" in obs.error
