"""One deployment's parts, built from a data directory: the thing ``main()`` assembles.

In the embedded default every adapter and the ledger run in one process; in
production each agency runs its own adapter with only its own keys. Both build
their parts through this class, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from broker.agreements.documents import load_agreement
from broker.agreements.policy import SharingPolicy
from broker.errors import VerificationError
from broker.gateway import AgencyGateway
from broker.gateway.agency import AgencyContext, utc_now
from broker.gateway.store import AgencyStore
from broker.kafka.topics import Topics
from broker.kafka.transport import KafkaTransport
from broker.ledger.checkpoint import CheckpointSigner, ledger_origin
from broker.ledger.reader import LedgerReader
from broker.ledger.service import LedgerService
from broker.ledger.store import LedgerStore
from broker.settings import Settings
from broker.transfer.desk import TransferDesk
from broker.trust.directory import Directory
from broker.trust.keystore import Keystore
from broker.trust.provision import (
    DataPaths,
    load_agency_keys,
    load_directory,
    load_governance_public,
    load_ledger_key,
    load_ledger_public,
)
from schemas.directory import AgencyEntry
from schemas.isa import Agreement


class Deployment:
    def __init__(
        self,
        *,
        settings: Settings,
        passphrase: bytes,
        transport: KafkaTransport,
        agreement: Agreement,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.paths = DataPaths(settings.data_dir)
        self.keystore = Keystore(self.paths.keys, passphrase)
        self.transport = transport
        self.agreement = agreement
        # One agreement per area where a deployment spans areas (transfers between them).
        self.agreements: dict[str, Agreement] = dict.fromkeys(agreement.areas, agreement)
        self.clock = clock
        self.topics = Topics(settings.topic_namespace)
        self.directory: Directory = load_directory(self.paths)
        self._subject_key = self.keystore.load_subject_key()
        self._stores: list[AgencyStore | LedgerStore] = []
        self._contexts: list[AgencyContext] = []

    def context(self, agency_id: str) -> AgencyContext:
        entry = self.directory.agency(agency_id)
        store = AgencyStore(self.paths.agency_store(agency_id))
        self._stores.append(store)
        ctx = AgencyContext(
            entry=entry,
            keys=load_agency_keys(self.keystore, entry, at=self.clock()),
            directory=self.directory,
            policy=SharingPolicy(self.agreement_for(entry), self.directory),
            subject_key=self._subject_key,
            store=store,
            settings=self.settings,
            clock=self.clock,
        )
        self._contexts.append(ctx)
        return ctx

    def add_agreement(self, agreement: Agreement) -> None:
        """Put another area's agreement in force here (before building its contexts)."""
        self.agreements.update(dict.fromkeys(agreement.areas, agreement))

    def agreement_for(self, entry: AgencyEntry) -> Agreement:
        """The agreement of the agency's (first covered) area."""
        return next(
            (self.agreements[a] for a in entry.areas if a in self.agreements), self.agreement
        )

    def transfer_desk(self, gateway: AgencyGateway) -> TransferDesk:
        return TransferDesk(gateway, self.transport, agreements=self.agreements)

    def refresh_trust(self) -> None:
        """Put the directory on disk in force (only if newer) and reload every running
        agency's keys: how a rotation or revocation reaches adapters without a restart."""
        self.directory.update(self.paths.directory.read_bytes())
        load_directory(self.paths)  # advance the rollback guard on disk too
        for ctx in self._contexts:
            entry = self.directory.agency(ctx.agency_id)
            ctx.entry = entry
            ctx.reload_keys(load_agency_keys(self.keystore, entry, at=self.clock()))

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

    def gateway(self, agency_id: str, *, topics: list[str] | None = None) -> AgencyGateway:
        return AgencyGateway(self.context(agency_id), self.transport, topics=topics)

    def ledger_store(self) -> LedgerStore:
        """The ledger database: ``database_url`` (PostgreSQL) if set, else SQLite in data_dir."""
        store = LedgerStore(self.settings.database_url or self.paths.ledger)
        self._stores.append(store)
        return store

    @property
    def ledger_origin(self) -> str:
        return ledger_origin(self.settings.topic_namespace)

    def ledger(self) -> LedgerService:
        return LedgerService(
            store=self.ledger_store(),
            directory=self.directory,
            transport=self.transport,
            topic=self.topics.audit,
            signer=CheckpointSigner(
                origin=self.ledger_origin, key=load_ledger_key(self.paths, self.keystore)
            ),
            clock=self.clock,
        )

    def ledger_reader(self, store: LedgerStore | None = None) -> LedgerReader:
        return LedgerReader(
            store=store or self.ledger_store(),
            public_key=load_ledger_public(self.paths),
            origin=self.ledger_origin,
            subject_ref=self.subject_ref,
        )

    def subject_ref(self, pnc_id: str) -> str:
        return self._subject_key.reference(pnc_id)

    def close(self) -> None:
        for store in self._stores:
            store.close()
        self._stores.clear()
