"""The pure promotion-by-digest rule."""

from __future__ import annotations

from primum.core.governance.promotion import unpromoted

ENVS = ["dev", "staging", "prod"]
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


def test_the_first_environment_takes_any_digest() -> None:
    assert unpromoted(ENVS, "dev", [("api", A)], {}) is None


def test_a_digest_must_have_passed_the_environment_just_before() -> None:
    assert unpromoted(ENVS, "prod", [("api", A)], {("api", A): {"staging"}}) is None
    why = unpromoted(ENVS, "prod", [("api", A)], {("api", A): {"dev"}})  # dev is not enough for prod
    assert why is not None and "api sha256:aaaaaaaaaaaa… has not passed staging" in why


def test_a_rebuilt_digest_starts_again_and_every_missing_one_is_named() -> None:
    why = unpromoted(ENVS, "staging", [("api", B), ("web", A)], {("api", A): {"dev"}})
    assert why is not None and "api sha256:bbbb" in why and "web sha256:aaaa" in why
    assert "starts again at dev" in why
