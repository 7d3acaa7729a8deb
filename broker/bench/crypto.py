"""Envelope cryptography per suite: sign, seal, verify, open (no broker involved).

The message is a realistic risk assessment: a full view for two RA agencies and a redacted
view for one housing authority, so each seal is two AES-GCM views and three HPKE wraps.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from broker.bench import BenchOptions, Figure
from broker.bench.fixtures import sample_message
from broker.crypto.encoding import jcs, strict_json
from broker.crypto.envelope import (
    Recipient,
    ViewToSeal,
    open_view,
    parse_envelope,
    seal,
    signed_bytes,
    verify_envelope,
)
from broker.crypto.keys import PrivateKey
from broker.crypto.suites import SUITES, Suite
from schemas.common import Classification, ViewKind, now_timestamp
from schemas.envelope import EnvelopeHeader
from schemas.messages import derive_view


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds`` (at least 20 calls)."""
    fn()  # warm
    calls, start = 0, time.perf_counter()
    while calls < 20 or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls / (time.perf_counter() - start)


def _header(suite: Suite, signers: list[PrivateKey]) -> EnvelopeHeader:
    return EnvelopeHeader(
        envelope_version=1,
        suite=suite.name,
        message_id=str(uuid.uuid4()),
        created_at=now_timestamp(),
        sender="police.bench",
        sender_keys=tuple(k.key_id for k in signers),
        area="staffordshire",
        topic="mappa.staffordshire.ra",
        message_type="risk-assessment",
        schema_version=1,
        subject_ref="ab" * 32,
        isa_id="mappa-default.staffordshire",
        isa_version=1,
        purpose="MAPPA risk management",
        lawful_basis="DPA 2018 Part 3",
        classification=Classification.OFFICIAL_SENSITIVE,
        supersedes=None,
    )


def suite_figures(suite: Suite, seconds: float) -> list[Figure]:
    message = sample_message()
    signers = [PrivateKey.generate(a) for a in suite.signature_keys]
    keys = {n: PrivateKey.generate(suite.kem_key) for n in ("probation.a", "prison.a", "housing.a")}
    full, redacted = (jcs(derive_view(message, k)) for k in (ViewKind.FULL, ViewKind.REDACTED))
    views = [
        ViewToSeal(
            ViewKind.FULL,
            full,
            tuple(Recipient(a, keys[a].public) for a in ("probation.a", "prison.a")),
        ),
        ViewToSeal(
            ViewKind.REDACTED, redacted, (Recipient("housing.a", keys["housing.a"].public),)
        ),
    ]

    def seal_one() -> bytes:
        return seal(header=_header(suite, signers), views=views, signers=signers, suite=suite)

    value = seal_one()
    to_sign = signed_bytes(strict_json(value))
    publics = [k.public for k in signers]
    verified = verify_envelope(parse_envelope(value), suite=suite, keys=publics)
    mine = {keys["housing.a"].key_id: keys["housing.a"]}
    name = suite.name
    return [
        Figure(
            "crypto",
            f"{name}: sign (all suite signatures)",
            rate(lambda: [k.sign(to_sign) for k in signers], seconds),
            "envelopes/s",
        ),
        Figure(
            "crypto",
            f"{name}: seal",
            rate(seal_one, seconds),
            "envelopes/s",
            f"{len(value):,} B envelope, 2 views, 3 recipients",
        ),
        Figure(
            "crypto",
            f"{name}: parse + verify",
            rate(
                lambda: verify_envelope(parse_envelope(value), suite=suite, keys=publics), seconds
            ),
            "envelopes/s",
        ),
        Figure(
            "crypto",
            f"{name}: open one view",
            rate(lambda: open_view(verified, agency="housing.a", keys=mine, suite=suite), seconds),
            "views/s",
        ),
    ]


async def run(options: BenchOptions) -> list[Figure]:
    seconds = max(0.05, 1.0 * options.scale)
    return [f for suite in SUITES.values() for f in suite_figures(suite, seconds)]
