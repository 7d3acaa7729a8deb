"""One deployment's parts, built from a data directory: the thing ``main()`` assembles.

In the embedded default every adapter and the ledger run in one process; in
production each agency runs its own adapter with only its own keys. Both build
their parts through this class, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from broker.agency import AgencyContext, utc_now
from broker.directory import Directory
from broker.gateway import AgencyGateway
from broker.keystore import Keystore
from broker.ledger.service import LedgerService
from broker.ledger.store import LedgerStore
from broker.policy import SharingPolicy
from broker.provision import DataPaths, load_agency_keys, load_directory
from broker.settings import Settings
from broker.store import AgencyStore
from broker.topics import Topics
from broker.transfer.desk import TransferDesk
from broker.transport import KafkaTransport
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

    def gateway(self, agency_id: str, *, topics: list[str] | None = None) -> AgencyGateway:
        return AgencyGateway(self.context(agency_id), self.transport, topics=topics)

    def ledger(self) -> LedgerService:
        store = LedgerStore(self.paths.ledger)
        self._stores.append(store)
        return LedgerService(
            store=store, directory=self.directory, transport=self.transport, topic=self.topics.audit
        )

    def subject_ref(self, pnc_id: str) -> str:
        return self._subject_key.reference(pnc_id)

    def close(self) -> None:
        for store in self._stores:
            store.close()
        self._stores.clear()
