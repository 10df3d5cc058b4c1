import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit_service import chain


def links(n: int) -> list[chain.StoredLink]:
    result = []
    prev = chain.GENESIS_HASH
    for position in range(1, n + 1):
        body = chain.canonical_json(
            {"id": f"e{position}", "type": "t", "subject": "s", "n": position}
        )
        digest = chain.chain_hash(prev, body)
        result.append(
            chain.StoredLink(
                position, f"e{position}", prev, digest, body, (f"e{position}", "t", "s")
            )
        )
        prev = digest
    return result


class TestCanonicalJson:
    def test_sorted_compact_ascii(self) -> None:
        assert chain.canonical_json({"b": 1, "a": "é\u0000"}) == '{"a":"\\u00e9\\u0000","b":1}'

    def test_hash_is_sha256_of_prev_and_body(self) -> None:
        assert chain.chain_hash(b"\x01" * 32, "{}") == hashlib.sha256(b"\x01" * 32 + b"{}").digest()


class TestVerifier:
    def test_intact_chain(self) -> None:
        verifier = chain.ChainVerifier()
        assert all(verifier.feed(link) for link in links(5))
        assert verifier.first_break is None
        assert verifier.count == 5

    def test_altered_body_is_named(self) -> None:
        rows = links(5)
        rows[2] = chain.StoredLink(
            3, "e3", rows[2].prev_hash, rows[2].hash, '{"x":1}', rows[2].derived
        )
        verifier = chain.ChainVerifier()
        for row in rows:
            verifier.feed(row)
        assert verifier.first_break is not None
        assert (verifier.first_break.position, verifier.first_break.reason) == (3, "hash_mismatch")
        assert verifier.count == 2

    def test_deleted_row_is_a_gap(self) -> None:
        rows = links(5)
        del rows[1]
        verifier = chain.ChainVerifier()
        for row in rows:
            verifier.feed(row)
        assert verifier.first_break is not None
        assert (verifier.first_break.position, verifier.first_break.reason) == (2, "position_gap")

    def test_indexed_columns_must_match_body(self) -> None:
        rows = links(3)
        r = rows[1]
        rows[1] = chain.StoredLink(2, "e2", r.prev_hash, r.hash, r.body, ("e2", "forged", "s"))
        verifier = chain.ChainVerifier()
        for row in rows:
            verifier.feed(row)
        assert verifier.first_break is not None
        assert verifier.first_break.reason == "body_mismatch"


class TestCheckpoint:
    def test_hmac_signature_verifies(self) -> None:
        signer = chain.Signer("HMAC-SHA256", "k1", b"s" * 32)
        claims = chain.checkpoint_claims(
            count=3, head_hash=b"\xab" * 32, issued_at=datetime(2026, 1, 1, tzinfo=UTC)
        )
        document = chain.sign_checkpoint(claims, signer)
        expected = hmac.new(
            b"s" * 32, chain.canonical_json(claims).encode(), hashlib.sha256
        ).digest()
        assert base64.b64decode(document["signature"]) == expected
        assert document["head_hash"] == "ab" * 32

    def test_ed25519_signature_verifies_with_published_key(self) -> None:
        signer = chain.Signer("Ed25519", "k2", b"\x07" * 32)
        claims = chain.checkpoint_claims(
            count=1, head_hash=b"\x00" * 32, issued_at=datetime(2026, 1, 1, tzinfo=UTC)
        )
        document = chain.sign_checkpoint(claims, signer)
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(document["public_key"]))
        public.verify(
            base64.b64decode(document["signature"]), chain.canonical_json(claims).encode()
        )
        with pytest.raises(InvalidSignature):
            public.verify(base64.b64decode(document["signature"]), b"other")
