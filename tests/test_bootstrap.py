"""The composition root reads the environment once and builds each adapter once."""

from __future__ import annotations

from pathlib import Path

from primum.app.bootstrap import Primum, Settings


def test_settings_come_from_the_environment_with_defaults(tmp_path: Path) -> None:
    s = Settings.from_environment({"PRIMUM_HOME": str(tmp_path), "PRIMUM_USER": "lee-chen"})
    assert s.home == tmp_path.resolve()
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'primum.db'}"
    assert s.keys_dir == tmp_path.resolve() / "keys"
    assert s.user == "lee-chen" and s.estate is None
    s = Settings.from_environment({"PRIMUM_HOME": str(tmp_path), "PRIMUM_KEYS_DIR": str(tmp_path / "k"),
                                   "PRIMUM_DATABASE_URL": "sqlite://", "PRIMUM_ESTATE": "estate.yaml"})
    assert s.keys_dir == (tmp_path / "k").resolve() and s.database_url == "sqlite://" and s.estate == "estate.yaml"


def test_each_adapter_is_built_once_with_the_settings(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'x.db'}",
                        keys_dir=tmp_path / "keys", user="u")
    primum = Primum(settings, clock=lambda: 1_000.0)
    try:
        assert primum.store is primum.store
        assert primum.releases.store is primum.store and primum.governance.store is primum.store
        assert primum.targets is primum.targets
        assert primum.store.url == settings.database_url
        assert (tmp_path / "home").is_dir()
        primum.store.verify_evidence()  # the store signs with the keys of the settings
    finally:
        primum.close()
