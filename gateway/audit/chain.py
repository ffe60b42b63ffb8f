"""The chain, pure: how a record is hashed and how a sequence of records is verified.

Each record's hash covers its own fields and the previous record's hash, so altering, removing
or reordering any record breaks every hash after it; signed checkpoints pin the head, so cutting
records off the end is caught too. Verification names the first record that does not fit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
FIELDS = ("seq", "at", "event", "outcome", "actor", "correlation_id", "detail", "body_digest")


def record_hash(record: Mapping[str, Any], prev_hash: str, seq: int | None = None) -> str:
    """SHA-256 over the canonical JSON of the record's fields and the previous hash."""
    content = {name: record.get(name) for name in FIELDS}
    if seq is not None:
        content["seq"] = seq
    content["prev_hash"] = prev_hash
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def checkpoint_message(seq: int, hash_: str, at: str) -> bytes:
    """What a checkpoint's signature covers."""
    return f"govtalk-hub-audit-checkpoint:{seq}:{hash_}:{at}".encode("ascii")


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    records: int
    checkpoints: int
    problem: str = ""
    first_bad_seq: int | None = None


def verify(
    records: Sequence[Mapping[str, Any]],
    checkpoints: Sequence[Mapping[str, Any]],
    signature_ok: Callable[[Mapping[str, Any]], str | None],
) -> Verdict:
    """Check the whole chain and every checkpoint; records are in stored (seq) order.

    `signature_ok` returns None for a good checkpoint signature, or why it is not good.
    """
    by_hash = {str(r.get("hash")): r for r in records}
    prev, expected_seq = GENESIS, 1
    hashes: dict[int, str] = {}
    for index, record in enumerate(records):
        seq = int(record["seq"])
        if seq != expected_seq:
            return _bad(
                records, checkpoints, expected_seq, f"record {expected_seq} is missing (removed)"
            )
        if record.get("prev_hash") != prev:
            moved = by_hash.get(str(record.get("prev_hash")))
            if moved is not None and int(moved["seq"]) > seq:
                return _bad(records, checkpoints, seq, f"record {seq} is out of order (reordered)")
            return _bad(records, checkpoints, seq, f"record {seq} does not follow record {seq - 1}")
        if record_hash(record, prev) != record.get("hash"):
            # Rows swapped under fixed sequence numbers: the content hashes at another seq.
            for other in records[index + 1 :]:
                if record_hash(record, prev, int(other["seq"])) == record.get("hash"):
                    return _bad(
                        records, checkpoints, seq, f"record {seq} is out of order (reordered)"
                    )
            return _bad(records, checkpoints, seq, f"record {seq} was altered")
        hashes[seq] = prev = str(record["hash"])
        expected_seq = seq + 1
    last = expected_seq - 1
    for checkpoint in checkpoints:
        seq = int(checkpoint["seq"])
        if seq > last:
            return _bad(
                records,
                checkpoints,
                last + 1,
                f"records {last + 1}..{seq} were removed (a signed checkpoint names record {seq})",
            )
        if hashes.get(seq) != checkpoint.get("hash"):
            return _bad(
                records, checkpoints, seq, f"record {seq} differs from the signed checkpoint"
            )
        problem = signature_ok(checkpoint)
        if problem is not None:
            return _bad(records, checkpoints, seq, f"checkpoint at record {seq}: {problem}")
    return Verdict(True, len(records), len(checkpoints))


def _bad(records: Sequence[Any], checkpoints: Sequence[Any], seq: int, problem: str) -> Verdict:
    return Verdict(False, len(records), len(checkpoints), problem, seq)
