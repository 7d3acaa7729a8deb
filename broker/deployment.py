"""One deployment's parts, built from a data directory: the thing ``main()`` assembles.

In the embedded default every adapter and the ledger run in one process; in
production each agency runs its own adapter with only its own keys. Both build
their parts through this class, so they cannot drift apart.

``async with deployment.running(...) as running:`` is the one way the parts run, for
``mappa serve``, both demos, the benchmark and the tests: it starts the broker (the
embedded one unless ``kafka_bootstrap`` names a cluster), the transport, the topics,
each agency's gateway with its transfer desk, the ledger and, if asked, background
pollers; and on exit, failure or Ctrl-C stops them all in reverse order and closes
every store. Among the pollers, ``watch_trust`` puts a newer signed directory written
to the data directory (``mappa keys rotate|revoke``, ``mappa directory sign|refresh``)
in force within ``TRUST_POLL_SECONDS``, without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from broker.agreements.documents import load_agreement
from broker.agreements.policy import SharingPolicy
from broker.errors import MappaError, VerificationError
from broker.files.strict import read_json
from broker.gateway import AgencyGateway
from broker.gateway.agency import AgencyContext, utc_now
from broker.gateway.sealing_pool import Sealer, SealHere, SealingPool
from broker.gateway.store import AgencyStore
from broker.kafka.acls import LEDGER_USER, scram_user
from broker.kafka.embedded import EmbeddedBroker
from broker.kafka.polling import Poll, polling
from broker.kafka.topics import Topics
from broker.kafka.transport import KafkaTransport
from broker.ledger.checkpoint import CheckpointSigner, ledger_origin, verifier_key
from broker.ledger.reader import LedgerReader
from broker.ledger.service import LedgerService
from broker.ledger.store import LedgerStore
from broker.ledger.witnessing import Witnessing
from broker.settings import Settings
from broker.transfer.desk import TransferDesk
from broker.trust.directory import Directory
from broker.trust.keystore import Keystore
from broker.trust.provision import (
    GOVERNANCE,
    DataPaths,
    load_agency_keys,
    load_directory,
    load_governance_public,
    load_ledger_key,
    load_ledger_public,
    revoked_signer,
    verify_against_accepted,
)
from broker.witness.http_client import HttpWitnessClient, witness_urls
from broker.witness.policy import Policy, load_policy
from broker.witness.protocol import InProcessClient
from broker.witness.setup import alarm_error, create_witness_policy, held_witnesses
from broker.witness.witness import Witness, WitnessAlarm, WitnessStore
from schemas.audit import Operation
from schemas.directory import AgencyEntry, KeyAlg
from schemas.isa import Agreement

log = logging.getLogger(__name__)
# How often a running deployment looks at its directory file: a revocation is in force
# everywhere within this long of being written, and a stat every few seconds costs
# nothing.
TRUST_POLL_SECONDS = 2.0


def offset_clock(seconds: float) -> Callable[[], datetime]:
    """The system clock, shifted by ``seconds`` (``MAPPA_CLOCK_OFFSET_SECONDS``, for
    drills); the plain system clock when there is no shift."""
    if not seconds:
        return utc_now
    shift = timedelta(seconds=seconds)
    return lambda: utc_now() + shift


@dataclass(frozen=True)
class Running:
    """A deployment's parts while they run (what ``Deployment.running`` yields)."""

    broker: str
    transport: KafkaTransport
    gateways: dict[str, AgencyGateway]
    desks: dict[str, TransferDesk]
    ledger: LedgerService | None

    def polls(self) -> dict[str, Poll]:
        """One poll per reader, by name: what background pollers run."""
        polls: dict[str, Poll] = {f"gateway {a}": gw.poll_once for a, gw in self.gateways.items()}
        if self.ledger is not None:
            polls["ledger"] = self.ledger.poll_once
        return polls


class Deployment:
    """The parts of one deployment, from its settings, its passphrase and the agreements
    in force (one per area; the first is the one ``agreement`` names)."""

    def __init__(
        self,
        *,
        settings: Settings,
        passphrase: bytes,
        agreements: Sequence[Agreement],
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not agreements:
            raise ValueError("a deployment needs at least one agreement")
        self.settings = settings
        self.paths = DataPaths(settings.data_dir)
        self.keystore = Keystore(self.paths.keys, passphrase)
        # For the sealing workers, which unlock the keys themselves.
        self._passphrase = passphrase
        self.agreement = agreements[0]
        # One agreement per area where a deployment spans areas (transfers between them).
        self.agreements: dict[str, Agreement] = {
            area: agreement for agreement in agreements for area in agreement.areas
        }
        self.clock = clock or offset_clock(settings.clock_offset_seconds)
        self.topics = Topics(settings.topic_namespace)
        self.directory: Directory = load_directory(self.paths)
        self._trust_stamp = self._directory_stamp()
        self._expiry_said = False
        self._subject_key = self.keystore.load_subject_key()
        self._stores: list[AgencyStore | LedgerStore | WitnessStore] = []
        # The witnesses run here (``ledger``), by name, and the policy naming them.
        self.witnesses: dict[str, Witness] = {}
        self._witness_policy: Policy | None = None
        # The ledger's gatherings, whose remote witnesses' threads stop before the stores close.
        self._witnessings: list[Witnessing] = []
        self._contexts: list[AgencyContext] = []

    def context(self, agency_id: str) -> AgencyContext:
        """What ``agency_id``'s adapter knows: its directory entry, its keys (unsealed with
        the passphrase), its agreement and its own store (opened here, closed by
        ``close``). Raises ``VerificationError`` for an agency not in the directory and
        ``KeyUnavailable`` when its keys are not held here."""
        entry = self.directory.agency(agency_id)
        now = self.clock()
        keys = load_agency_keys(self.keystore, entry, at=now)
        # Its key revoked and none issued yet: it still starts and receives, and says
        # why it cannot publish, rather than not starting at all.
        revoked = (
            None if KeyAlg.ED25519 in keys.signing else revoked_signer(self.keystore, entry, at=now)
        )
        store = AgencyStore(self.paths.agency_store(agency_id))
        self._stores.append(store)
        ctx = AgencyContext(
            entry=entry,
            keys=keys,
            revoked_signer=revoked,
            directory=self.directory,
            policy=SharingPolicy(self.agreement_for(entry), self.directory),
            subject_key=self._subject_key,
            store=store,
            settings=self.settings,
            clock=self.clock,
            ledger_key=load_ledger_public(self.paths) if self.paths.ledger_pub.exists() else None,
        )
        self._contexts.append(ctx)
        return ctx

    def _sealer(self) -> Sealer:
        """Where this deployment's gateways seal: a worker per core (or as many as
        ``MAPPA_SEAL_WORKERS`` says), unlocking the keys themselves; in this process if
        it says 0."""
        workers = self.settings.seal_workers
        if workers is None:
            workers = os.cpu_count() or 1
        if workers == 0:
            return SealHere()
        return SealingPool(self.paths.keys, self._passphrase, workers)

    def agreement_for(self, entry: AgencyEntry) -> Agreement:
        """The agreement of the agency's (first covered) area."""
        return next(
            (self.agreements[a] for a in entry.areas if a in self.agreements), self.agreement
        )

    def refresh_trust(self) -> bool:
        """Put the directory on disk in force if it is newer, and reload every running
        agency's keys: how a rotation or revocation reaches adapters without a restart.
        True if the directory changed. Raises ``VerificationError`` (and changes
        nothing) for a directory that does not verify, is older than the one in force
        or accepted here (``directory.rollback``), or is another document with the same
        version (``directory.version-conflict``)."""
        raw = read_json(self.paths.directory)  # bounded and strict, as at start-up
        verify_against_accepted(self.paths, raw)
        before = self.directory.digest
        self.directory.update(raw)
        load_directory(self.paths)  # record it as accepted on disk too
        for ctx in self._contexts:
            entry = self.directory.agency(ctx.agency_id)
            ctx.entry = entry
            ctx.reload_keys(load_agency_keys(self.keystore, entry, at=self.clock()))
        changed = self.directory.digest != before
        if changed:
            self._expiry_said = False
            log.info("trust directory version %d in force", self.directory.version)
        return changed

    def _directory_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self.paths.directory.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size, stat.st_ino

    async def watch_trust(self) -> None:
        """One look at the directory file, after ``TRUST_POLL_SECONDS``: if it changed,
        ``refresh_trust``. A file that does not verify is said once in the log and left
        out of force until it changes again; the directory in force expiring is said
        once too (readiness says it for as long as it lasts). Raises nothing of ours."""
        await asyncio.sleep(TRUST_POLL_SECONDS)
        stamp = self._directory_stamp()
        if stamp is not None and stamp != self._trust_stamp:
            self._trust_stamp = stamp
            try:
                self.refresh_trust()
            except (MappaError, OSError) as exc:
                code = exc.code if isinstance(exc, MappaError) else "config.invalid"
                log.warning(
                    "the trust directory on disk is not put in force (%s): %s; version %d "
                    "stays in force",
                    code,
                    exc,
                    self.directory.version,
                )
        if not self._expiry_said and self.directory.expired(self.clock()):
            self._expiry_said = True
            log.error(
                "trust directory version %d expired at %s: every envelope is refused until "
                "a newer signed version is written (`mappa directory refresh`)",
                self.directory.version,
                self.directory.document.valid_until,
            )

    def refresh_agreement(self) -> bool:
        """Put the signed agreement on disk in force for every running agency if it is a
        newer version of the one in force (``mappa isa sign`` writes it); an older one
        is refused. True if the agreement changed: the next message follows it."""
        signed = load_agreement(self.paths, self.agreement.id, load_governance_public(self.paths))
        if signed.version < self.agreement.version:
            raise VerificationError(
                f"agreement {signed.id} version {signed.version} on disk is older than "
                f"version {self.agreement.version} in force",
                code="isa.rollback",
            )
        if signed == self.agreement:
            return False
        if signed.version == self.agreement.version:
            raise VerificationError(
                f"a different agreement {signed.id} claims version {signed.version}, already "
                "in force",
                code="isa.version-conflict",
            )
        self.agreement = signed
        for ctx in self._contexts:
            ctx.policy = SharingPolicy(signed, self.directory)
        return True

    def ledger_store(self) -> LedgerStore:
        """The ledger database: ``database_url`` (PostgreSQL) if set, else SQLite in data_dir."""
        store = LedgerStore(self.settings.database_url or self.paths.ledger)
        self._stores.append(store)
        return store

    @property
    def ledger_origin(self) -> str:
        return ledger_origin(self.settings.topic_namespace)

    def ledger(self, transport: KafkaTransport) -> LedgerService:
        """The ledger service on this deployment's ledger database, reading the audit
        topic through ``transport``, signing checkpoints and its receipts with the ledger
        key."""
        key = load_ledger_key(self.paths, self.keystore)
        service = LedgerService(
            store=self.ledger_store(),
            directory=self.directory,
            transport=transport,
            topic=self.topics.audit,
            signer=CheckpointSigner(origin=self.ledger_origin, key=key),
            clock=self.clock,
            receipts=(self.topics.receipts, key),
            verify_every=self.settings.ledger_verify_every,
        )
        policy = self.witness_policy(verifier_key(self.ledger_origin, key.public))
        if policy is not None:
            self._hold_witnesses(policy)
            clients = {name: InProcessClient(w) for name, w in self.witnesses.items()}
            # The others, where MAPPA_WITNESS_URLS says they answer (a split deployment).
            remote: dict[str, HttpWitnessClient] = {
                name: HttpWitnessClient(url)
                for name, url in witness_urls(self.settings.witness_urls).items()
                if name not in clients
            }
            unknown = sorted(set(remote) - {w.name for w in policy.witnesses})
            if unknown:
                log.warning("MAPPA_WITNESS_URLS names witnesses the policy does not: %s",
                            ", ".join(unknown))  # fmt: skip
            witnessing = Witnessing(
                log_=service.store,
                policy=policy,
                clients=clients,
                remote=remote,
                # Their threads' own connection, off the appending thread's transactions.
                remote_log=self.ledger_store() if remote else None,
            )
            self._witnessings.append(witnessing)
            service.witnessing = witnessing
        return service

    def _hold_witnesses(self, policy: Policy) -> None:
        """Open the witnesses of ``policy`` whose keys are held here, once."""
        if not self.witnesses:
            self.witnesses = held_witnesses(policy, self.paths, self.keystore, clock=self.clock)
            self._stores.extend(w.store for w in self.witnesses.values())

    def witness_policy(self, log_key: str | None = None) -> Policy | None:
        """The governance-signed witness policy (``witness-policy.json``), verified; None
        if there is none. Where there is none, ``log_key`` (the ledger's verifier key) is
        given and the governance key is held here (the embedded default), the default
        policy is made now (``broker.witness.setup``). Raises ``VerificationError`` or
        ``SchemaError`` for a policy file that does not verify."""
        if self._witness_policy is None:
            policy = load_policy(self.paths.root, load_governance_public(self.paths))
            if policy is None and log_key is not None and self.keystore.key_ids(GOVERNANCE):
                policy = create_witness_policy(
                    self.paths,
                    self.keystore,
                    self.directory,
                    namespace=self.settings.topic_namespace,
                    origin=self.ledger_origin,
                    log_key=log_key,
                )
            self._witness_policy = policy
        return self._witness_policy

    def _serve_witnesses(self) -> None:
        """Open the witnesses whose keys are held here when the ledger runs elsewhere
        (``mappa serve --agency ID`` on a gateway's directory), for the API to serve over
        HTTP; none without a witness policy here."""
        policy = self.witness_policy()
        if policy is not None:
            self._hold_witnesses(policy)

    def served_witnesses(self, agencies: Sequence[str]) -> dict[str, Witness]:
        """The witnesses held here that ``agencies`` run, by agency id (what the API
        answers for over HTTP). Raises nothing."""
        if self._witness_policy is None:
            return {}
        policy = self._witness_policy
        return {
            agency: witness
            for name, witness in self.witnesses.items()
            if (agency := policy.entry(name).agency) in agencies
        }

    def _audit_alarms(self, gateways: dict[str, AgencyGateway]) -> None:
        """Have each witness run here audit its alarms through its agency's audit emitter
        (a refusal event with the alarm's code), on the event loop."""
        if self._witness_policy is None:
            return
        loop = asyncio.get_running_loop()
        for name, witness in self.witnesses.items():
            gateway = gateways.get(self._witness_policy.entry(name).agency)
            if gateway is None:
                continue
            audit = gateway.ctx.audit

            def emit(alarm: WitnessAlarm, audit: Any = audit) -> None:
                loop.call_soon_threadsafe(audit.refusal, Operation.REFUSE, alarm_error(alarm))

            witness.on_alarm = emit

    def ledger_reader(self, store: LedgerStore | None = None) -> LedgerReader:
        """Queries, proofs and verification over ``store`` (else a new connection)."""
        public = load_ledger_public(self.paths)
        reader = LedgerReader(
            store=store or self.ledger_store(),
            public_key=public,
            origin=self.ledger_origin,
            subject_ref=self.subject_ref,
        )
        reader.witness_policy = self.witness_policy(verifier_key(self.ledger_origin, public))
        return reader

    def subject_ref(self, pnc_id: str) -> str:
        """The subject's pseudonymous reference: a keyed hash of the PNC id."""
        return self._subject_key.reference(pnc_id)

    def close(self) -> None:
        """Close every store this deployment opened. Idempotent."""
        for witnessing in self._witnessings:
            witnessing.close()
        self._witnessings.clear()
        for store in self._stores:
            store.close()
        self._stores.clear()
        self.witnesses = {}  # their stores are closed: opened again by the next ``ledger``

    def _after_restart(self, parts: Running, areas: Sequence[str]) -> Callable[[], Awaitable[None]]:
        """What follows the embedded broker's restart: its topics again, and every reader
        on the new (empty) log, every sender sending again what nobody receipted."""

        async def hook() -> None:
            transports = {id(gw.transport): gw.transport for gw in parts.gateways.values()}
            transports[id(parts.transport)] = parts.transport
            for transport in transports.values():
                transport.cluster_id = await transport.current_cluster_id()
            await parts.transport.ensure_topics(self.topics.all_topics(areas))
            readers: dict[str, Callable[[], Awaitable[None]]] = {
                name: gw.reread for name, gw in parts.gateways.items()
            }
            if parts.ledger is not None:
                readers["ledger"] = parts.ledger.reread
            # Each on its own: one that fails opens its reader at its next poll instead.
            for name, reread in readers.items():
                try:
                    await reread()
                except Exception as exc:  # noqa: BLE001 - logged; the next poll reopens
                    log.warning("%s: reading the new log begins at the next poll: %s", name, exc)

        return hook

    @asynccontextmanager
    async def running(
        self,
        agencies: Sequence[str] | None = None,
        *,
        ledger: bool = True,
        background: bool = False,
    ) -> AsyncIterator[Running]:
        """Run ``agencies`` (default: every active agency in the directory), each with
        its gateway and transfer desk, the ledger unless ``ledger`` is false, and
        background pollers if ``background``; everything stops, and every store closes,
        when the block ends, also on failure and Ctrl-C. Raises ``ConfigurationError``
        for insecure Kafka settings and ``TransportError`` if the broker does not answer."""
        served = (
            list(agencies)
            if agencies is not None
            else [a.agency_id for a in self.directory.agencies()]
        )
        async with AsyncExitStack() as stack:
            stack.callback(self.close)
            bootstrap = self.settings.kafka_bootstrap
            embedded: EmbeddedBroker | None = None
            if bootstrap is None:
                embedded = EmbeddedBroker(log_path=self.paths.root / "broker.log", supervise=True)
                bootstrap = await stack.enter_async_context(embedded)
                stack.callback(embedded.release_chatter)  # runs once every client stopped
                broker = f"embedded tansu at {bootstrap} (memory-only, stopped on exit)"
            else:
                broker = f"Kafka at {bootstrap}"
            transport = await stack.enter_async_context(
                KafkaTransport(self.settings, bootstrap=bootstrap)
            )
            areas = sorted({area for a in served for area in self.directory.agency(a).areas})
            await transport.ensure_topics(self.topics.all_topics(areas))
            # Each agency as its own principal where credentials are held per principal
            # (the ACLs then apply to each as they would to separate deployments).
            users = {a: scram_user(self.directory.agency(a).kafka_principal) for a in served}
            if ledger:
                users[LEDGER_USER] = LEDGER_USER
            own: dict[str, KafkaTransport] = dict.fromkeys(users, transport)
            if self.settings.kafka_credentials_dir is not None:
                own = {
                    who: KafkaTransport(self.settings, bootstrap=bootstrap, username=user)
                    for who, user in users.items()
                }
                for part in own.values():
                    stack.push_async_callback(part.stop)
                await asyncio.gather(*(part.start() for part in own.values()))
            sealer = self._sealer()
            if isinstance(sealer, SealingPool):
                stack.callback(sealer.close)
                sealer.start()
            gateways = {a: AgencyGateway(self.context(a), own[a], sealer=sealer) for a in served}
            # Desks plug the transfer topic into their gateway before it starts reading.
            desks = {a: TransferDesk(gw, agreements=self.agreements) for a, gw in gateways.items()}
            for gateway in gateways.values():
                stack.push_async_callback(gateway.stop)
            # Each reader is its own connection: start them together.
            await asyncio.gather(*(gw.start() for gw in gateways.values()))
            service = (
                await stack.enter_async_context(self.ledger(own[LEDGER_USER])) if ledger else None
            )
            parts = Running(broker, transport, gateways, desks, service)
            if service is None:  # the ledger runs elsewhere: the served agencies' witnesses
                self._serve_witnesses()
            self._audit_alarms(gateways)
            if embedded is not None:
                embedded.on_restart(self._after_restart(parts, areas))
                # Registered last, so run first on the way out: the parts stop without
                # the client's chatter about a broker that died under them.
                stack.callback(embedded.hold_chatter)
            if background:
                polls = {**parts.polls(), "trust directory": self.watch_trust}
                await stack.enter_async_context(polling(polls))
            yield parts
