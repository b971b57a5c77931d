"""Promotion by digest (pure): an artifact digest enters an environment only after it passed the one before.

A rebuilt artifact has a new digest, so it has passed nothing and starts again at the first
environment; the version label plays no part. Break-glass does not bypass this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def unpromoted(environments: Sequence[str], env: str, entering: Sequence[tuple[str, str]],
               passed: Mapping[tuple[str, str], set[str]]) -> str | None:
    """Why the ``(service, digest)`` pairs ``entering`` may not enter ``env``, or None when they may.

    ``environments`` is the estate's promotion order; ``passed`` maps a pair to the environments
    it passed (in any release).
    """
    index = environments.index(env)
    if index == 0:
        return None
    previous = environments[index - 1]
    missing = [f"{service} {digest[:19]}… has not passed {previous}" for service, digest in entering
               if previous not in passed.get((service, digest), set())]
    if not missing:
        return None
    return ("promotion by digest: " + "; ".join(missing)
            + f" (an artifact enters {env} only after it passed {previous}; a rebuilt artifact starts again "
              f"at {environments[0]})")
