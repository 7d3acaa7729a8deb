"""Who may publish what, and who may see which view, under an agreement.

Fails closed: no agreement, no party, no rule, or a rule of "none" means nothing
is shared. Enforced twice, by the sender's adapter when it derives views and by
each recipient's adapter when a view arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from broker.directory import Directory
from broker.errors import PolicyDenied
from schemas.common import ViewKind
from schemas.directory import AgencyEntry
from schemas.isa import Agreement, Party, ShareRule


@dataclass(frozen=True)
class Disclosure:
    """One recipient of one message, and the view it is entitled to."""

    recipient: AgencyEntry
    view: ViewKind
    rule: ShareRule


class SharingPolicy:
    def __init__(self, agreement: Agreement, directory: Directory) -> None:
        self.agreement = agreement
        self.directory = directory
        self._parties = {p.agency_id: p for p in agreement.parties}
        self._rules = {(r.message_type, r.role): r for r in agreement.rules}

    def party(self, agency_id: str) -> Party:
        party = self._parties.get(agency_id)
        if party is None:
            raise PolicyDenied(
                f"{agency_id} is not a party to agreement {self.agreement.id} "
                f"v{self.agreement.version}",
                code="policy.not-a-party",
            )
        return party

    def check_in_force(self, today: date) -> None:
        a = self.agreement
        if not date.fromisoformat(a.valid_from) <= today <= date.fromisoformat(a.valid_until):
            raise PolicyDenied(
                f"agreement {a.id} v{a.version} is in force {a.valid_from} to {a.valid_until}; "
                f"today is {today.isoformat()}: sharing under it has stopped",
                code="policy.agreement-expired",
            )

    def check_area(self, area: str) -> None:
        if area not in self.agreement.areas:
            raise PolicyDenied(
                f"agreement {self.agreement.id} does not cover area {area}",
                code="policy.area-not-covered",
            )

    def authorise_publish(
        self, sender: AgencyEntry, message_type: str, area: str, today: date
    ) -> None:
        self.check_in_force(today)
        self.check_area(area)
        self.party(sender.agency_id)
        if area not in sender.areas:
            raise PolicyDenied(
                f"{sender.agency_id} does not operate in {area}", code="policy.area-not-covered"
            )
        allowed = next(
            (p.roles for p in self.agreement.publishers if p.message_type == message_type), ()
        )
        if sender.role not in allowed:
            raise PolicyDenied(
                f"a {sender.role.value} agency may not publish {message_type} under "
                f"{self.agreement.id}",
                code="policy.publish-not-allowed",
            )

    def entitlement(self, recipient: AgencyEntry, message_type: str) -> ShareRule | None:
        """The rule that gives ``recipient`` a view of ``message_type``, if any."""
        if recipient.agency_id not in self._parties:
            return None
        rule = self._rules.get((message_type, recipient.role))
        if rule is None or rule.access.view is None:
            return None
        return rule

    def recipients(self, sender: AgencyEntry, message_type: str, area: str) -> list[Disclosure]:
        out = []
        for agency in self.directory.agencies(area=area):
            if agency.agency_id == sender.agency_id:
                continue
            rule = self.entitlement(agency, message_type)
            if rule is not None and rule.access.view is not None:
                out.append(Disclosure(agency, rule.access.view, rule))
        return out

    def check_inbound(
        self,
        *,
        recipient: AgencyEntry,
        sender: AgencyEntry,
        message_type: str,
        area: str,
        view: ViewKind,
        today: date,
    ) -> ShareRule:
        """Raise unless the sender could publish this and ``recipient`` may hold ``view``."""
        self.authorise_publish(sender, message_type, area, today)
        rule = self.entitlement(recipient, message_type)
        if rule is None or rule.access.view is None:
            raise PolicyDenied(
                f"{recipient.agency_id} is entitled to no view of {message_type} from "
                f"{sender.agency_id} under {self.agreement.id}: breach by the sender",
                code="policy.breach-not-entitled",
            )
        if view.richness > rule.access.view.richness:
            raise PolicyDenied(
                f"{sender.agency_id} sent a {view.value} view of {message_type}; "
                f"{recipient.agency_id} may hold at most {rule.access.view.value}: "
                "breach by the sender",
                code="policy.breach-view-too-rich",
            )
        return rule
