"""The hash chain of the trail and its signed checkpoint: pure functions, no I/O.

Each trail row stores the canonical JSON of the event it records (`body`) and
`hash = sha256(prev_hash || body)`, where `prev_hash` is the hash of the row before it (32 zero
bytes for the first row). Changing, removing or inserting any row therefore changes every hash
after it, and re-computing the chain from the first row finds the first position that differs.
"""

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

GENESIS_HASH = bytes(32)
"""The `prev_hash` of the first row of the trail."""


def canonical_json(value: Any) -> str:
    """Serialise `value` deterministically: sorted keys, no whitespace, ASCII only.

    ASCII escaping keeps the text free of NULs and lone surrogates, which PostgreSQL `text`
    cannot hold, so the stored body is byte-for-byte what was hashed.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def chain_hash(prev_hash: bytes, body: str) -> bytes:
    """The hash of a row: `sha256(prev_hash || body)`, body as UTF-8."""
    return hashlib.sha256(prev_hash + body.encode("utf-8")).digest()


BreakReason = Literal[
    "hash_mismatch", "prev_hash_mismatch", "position_gap", "body_mismatch", "head_mismatch"
]


@dataclass(frozen=True)
class ChainBreak:
    """The first place the stored chain differs from the recomputed one."""

    position: int
    reason: BreakReason
    detail: str
    event_id: str | None = None


@dataclass(frozen=True)
class StoredLink:
    """What verification needs of one stored row."""

    position: int
    event_id: str
    prev_hash: bytes
    hash: bytes
    body: str
    derived: tuple[str, str, str]
    """The columns derived from the body: (event id, type, subject); checked against it."""


class ChainVerifier:
    """Feeds stored rows in position order and records the first break; O(1) memory.

    `checkpoint` = (count, hash) of an earlier checkpoint: the row at that position must still
    carry that hash, which catches a chain rewritten from some row on, or cut at the end.
    """

    def __init__(self, checkpoint: tuple[int, bytes] | None = None) -> None:
        self.expected_position = 1
        self.prev_hash = GENESIS_HASH
        self.count = 0
        self.first_break: ChainBreak | None = None
        self.checkpoint = checkpoint

    def finish(self) -> None:
        """Call after the last row: a trail shorter than the checkpoint is a break."""
        if self.first_break is None and self.checkpoint and self.count < self.checkpoint[0]:
            self.first_break = ChainBreak(
                self.count + 1,
                "head_mismatch",
                f"the trail ends at position {self.count}, but the checkpoint counted "
                f"{self.checkpoint[0]} rows: rows were removed from the end",
            )

    def feed(self, link: StoredLink) -> bool:
        """Check one row; False once a break was found (later rows need not be read)."""
        if self.first_break is not None:
            return False
        broken = self._check(link)
        if broken is not None:
            self.first_break = broken
            return False
        self.count += 1
        self.expected_position += 1
        self.prev_hash = link.hash
        return True

    def _check(self, link: StoredLink) -> ChainBreak | None:
        if link.position != self.expected_position:
            # A deleted row leaves a gap; an inserted one repeats or reorders positions.
            return ChainBreak(
                self.expected_position,
                "position_gap",
                f"expected position {self.expected_position}, found {link.position}: "
                "a row was deleted or inserted here",
                link.event_id,
            )
        if link.prev_hash != self.prev_hash:
            return ChainBreak(
                link.position,
                "prev_hash_mismatch",
                "prev_hash does not equal the hash of the row before it",
                link.event_id,
            )
        if chain_hash(link.prev_hash, link.body) != link.hash:
            return ChainBreak(
                link.position,
                "hash_mismatch",
                "the stored hash does not match sha256(prev_hash || body): the body was altered",
                link.event_id,
            )
        try:
            body = json.loads(link.body)
        except ValueError:
            body = None
        if isinstance(body, dict):
            derived = (
                str(body.get("id", "")),
                str(body.get("type", "")),
                str(body.get("subject", "")),
            )
            if derived != link.derived:
                return ChainBreak(
                    link.position,
                    "body_mismatch",
                    "the indexed columns (event id, type, subject) differ from the hashed body",
                    link.event_id,
                )
        if (
            self.checkpoint
            and link.position == self.checkpoint[0]
            and link.hash != self.checkpoint[1]
        ):
            return ChainBreak(
                link.position,
                "head_mismatch",
                "this row's hash differs from the checkpoint's: the chain was rewritten up to here",
                link.event_id,
            )
        return None


# -- signed checkpoints ----------------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    """Signs checkpoints with an HMAC-SHA256 secret or an Ed25519 private key."""

    algorithm: Literal["HMAC-SHA256", "Ed25519"]
    key_id: str
    secret: bytes

    def sign(self, message: bytes) -> str:
        """Base64 signature of `message`."""
        if self.algorithm == "HMAC-SHA256":
            digest = hmac.new(self.secret, message, hashlib.sha256).digest()
        else:
            digest = Ed25519PrivateKey.from_private_bytes(self.secret).sign(message)
        return base64.b64encode(digest).decode("ascii")

    def public_key(self) -> str | None:
        """Base64 raw Ed25519 public key (for operators to verify with); None for HMAC."""
        if self.algorithm != "Ed25519":
            return None
        raw = Ed25519PrivateKey.from_private_bytes(self.secret).public_key().public_bytes_raw()
        return base64.b64encode(raw).decode("ascii")


def checkpoint_claims(*, count: int, head_hash: bytes, issued_at: datetime) -> dict[str, Any]:
    """The signed part of a checkpoint: how many rows, the latest hash, and when."""
    return {"count": count, "head_hash": head_hash.hex(), "issued_at": issued_at.isoformat()}


def sign_checkpoint(claims: dict[str, Any], signer: Signer) -> dict[str, Any]:
    """A checkpoint document: the claims plus the signature over their canonical JSON."""
    signature = signer.sign(canonical_json(claims).encode("ascii"))
    document = dict(claims)
    document.update(algorithm=signer.algorithm, key_id=signer.key_id, signature=signature)
    public_key = signer.public_key()
    if public_key is not None:
        document["public_key"] = public_key
    return document
