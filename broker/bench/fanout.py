"""The fan-out scenario: a risk assessment to a full area with a case team.

Every kind of agency of the area is provisioned, a party to its agreement
(``fixtures.FULL_AREA``). The co-ordination unit first publishes a case team putting
all of them on the case of each subject, and police waits until it has received every
team; then police publishes a few risk assessments about those subjects, untimed, and
then the measured ones from 32 concurrent callers. Each publication is one envelope per
recipient topic (one per named redaction set where recipients on a topic differ in it),
each view wrapped for every agency entitled to it, and the publication's audit events:
counted on the broker, not assumed.
"""

from __future__ import annotations

from pathlib import Path

from broker.bench import Figure
from broker.bench.deployments import provisioned
from broker.bench.figures import baseline, sent_figures, throughput
from broker.bench.fixtures import (
    AREA,
    FULL_AREA,
    FULL_AREA_COORDINATOR,
    FULL_AREA_LEAD,
    FULL_AREA_POLICE,
    PURPOSE,
    case_team,
    pnc,
    sample_message,
)
from broker.bench.measure import (
    added,
    on_broker,
    outbox_rows,
    plain,
    publish_all,
    receive_all,
)

CALLERS = 32
# Subjects with a case team: publications go round them, so that records spread over
# the partitions (they are keyed by subject) as a real area's would.
SUBJECTS = 32
# Publications before any timing (``transport.WARM_UP``).
WARM_UP = 5


async def fan_out(bootstrap: str, root: Path, suite: str, n: int) -> list[Figure]:
    """The fan-out scenario of one suite, ``n`` publications (module docstring)."""
    bench = provisioned(bootstrap, root, suite, FULL_AREA)
    deployment = bench.deployment()
    label = f"mappa {suite} fan-out"
    names = deployment.topics.all_topics([AREA])
    subjects = [pnc(21, i) for i in range(min(SUBJECTS, n))]
    serving = [FULL_AREA_POLICE, FULL_AREA_COORDINATOR]
    async with deployment.running(serving, ledger=False) as running:
        police, coordinator = (running.gateways[a] for a in serving)
        transport = running.transport
        for subject in subjects:
            team = case_team(subject, FULL_AREA, lead=FULL_AREA_LEAD)
            await coordinator.publish(team, purpose="MAPPA case management")
        await receive_all(police, len(subjects))
        warm_up = (sample_message(pnc=s) for s in subjects[:WARM_UP])
        await publish_all(police, warm_up, callers=1, purpose=PURPOSE)
        rows = outbox_rows(police)
        before = await on_broker(transport, names)
        messages = (sample_message(pnc=subjects[i % len(subjects)]) for i in range(n))
        seconds = await publish_all(police, messages, callers=CALLERS, purpose=PURPOSE)
        records = added(before, await on_broker(transport, names))
        rows = outbox_rows(police) - rows
        copies = await plain(transport, records, len(records))
    produced = baseline(
        f"{suite} fan-out: produce", copies.produce, "the publications' records", copies
    )
    return [
        *sent_figures(label, n, records, deployment.topics, rows),
        produced,
        *throughput(
            f"{label}: publish, {CALLERS} callers",
            publications=n,
            records=len(records),
            seconds=seconds,
            base=produced,
        ),
    ]
