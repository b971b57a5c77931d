"""Signed router configurations: what makes a fence something only the controller can issue.

A router accepts a configuration only inside an envelope signed with the
runtime's fence key (HMAC-SHA256, a 32-byte secret in a 0600 file that the
runtime creates and that only the controller and the routers read)::

    {"payload": "<the configuration as JSON text>", "mac": "<hex HMAC-SHA256 of the payload text>"}

The MAC covers the exact payload text (no canonicalisation to get wrong), and
the payload names the router it is for (``router``: ``ENV/SERVICE``) and a
push sequence number (``seq``) next to the lease's ``fence``. So:

* an arbitrary configuration (or fence) from anyone without the key is refused;
* a configuration signed for one router is refused by every other router;
* a replay of an older signed configuration is refused: ``seq`` grows with
  every push (the runtime persists the last one issued, so it survives
  controller and router restarts, and a restarted router is told where its
  predecessor stopped), and the router accepts only a ``seq`` above the last;
* a fence below the highest accepted is refused (a controller that lost its lease);
* a fence above :data:`MAX_FENCE` (2**53 - 1, the largest integer JSON carries
  exactly) is refused even when signed, so one bad number cannot lock every
  later controller out.

Why HMAC and not the evidence keys' Ed25519: both ends are on one machine and
belong to one runtime; a shared secret in an owner-only file is the smallest
thing that proves a push came from the controller, and checking it costs the
router microseconds. The module is pure (no I/O): the key arrives as bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from primum.adapters.targets.local.routes import MAX_FENCE

KEY_BYTES = 32
ENVELOPE_FIELDS = frozenset({"payload", "mac"})


class EnvelopeError(ValueError):
    """A push that is not a valid signed envelope; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def mac(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def seal(key: bytes, router: str, seq: int, config: dict[str, Any]) -> dict[str, str]:
    """The envelope for ``config`` (which holds ``fence``) to router ``router`` as push ``seq``."""
    payload = json.dumps({**config, "router": router, "seq": seq}, separators=(",", ":"), sort_keys=True)
    return {"payload": payload, "mac": mac(key, payload)}


def open_envelope(key: bytes, router: str, body: object) -> tuple[int, dict[str, Any]]:
    """Check the envelope's MAC and addressee; return ``(seq, config)`` (``config`` still holds ``fence``).

    Raises :class:`EnvelopeError` naming the field; the fence's order is the caller's to check.
    """
    if not isinstance(body, dict) or set(body) != ENVELOPE_FIELDS:
        raise EnvelopeError("body", 'must be a signed envelope {"payload": "<json>", "mac": "<hex>"}; '
                                    "push through the controller (primum), which holds the fence key")
    payload, tag = body["payload"], body["mac"]
    if not isinstance(payload, str) or not isinstance(tag, str):
        raise EnvelopeError("body", "payload and mac must be strings")
    if not hmac.compare_digest(mac(key, payload), tag):
        raise EnvelopeError("mac", "does not verify with this runtime's fence key: not issued by its controller")
    try:
        config = json.loads(payload)
    except ValueError as exc:
        raise EnvelopeError("payload", f"not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise EnvelopeError("payload", "must be a JSON object")
    if config.pop("router", None) != router:
        raise EnvelopeError("router", f"the configuration is not addressed to {router}")
    seq = config.pop("seq", None)
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq <= MAX_FENCE:
        raise EnvelopeError("seq", f"must be an integer 1..{MAX_FENCE}")
    return seq, config
