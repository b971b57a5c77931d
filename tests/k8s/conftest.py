"""Fixtures: a kmock emulator per test (see emulator.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.emulator import Emulator


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    emu = Emulator(tmp_path)
    yield emu
    emu.close()


@pytest.fixture
def gateway_emulator(tmp_path: Path) -> Iterator[Emulator]:
    emu = Emulator(tmp_path, gateway_api=True)
    yield emu
    emu.close()
