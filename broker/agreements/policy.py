"""Who may publish what, and who may see which view, under an agreement.

Fails closed: no agreement, no party, no rule, or a rule of "none" means nothing
is shared. Enforced twice, by the sender's adapter when it derives views and by
each recipient's adapter when a view arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from broker.errors import PolicyDenied, VerificationError
from broker.trust.directory import Directory
from schemas.common import RESPONSIBLE_AUTHORITY, Role, ViewKind
from schemas.directory import AgencyEntry
from schemas.isa import Access, Agreement, Party, ShareRule

# The message type that sets a case team. Its own rules name who hears of a team; a
# member who joins or leaves must hear of it even though its record (or the sender's)
# does not yet say so, so for this type the team is the old team and the new together.
CASE_TEAM_TYPE = "case-team"
# The Responsible Authority and its co-ordination unit manage every MAPPA case in their
# area; any other agency's case load is the cases whose team it is on.
AREA_WIDE_CASE_LOAD = RESPONSIBLE_AUTHORITY | {Role.COORDINATOR}

# A case team as an adapter knows it: the member agency ids, or None if it has none.
Team = frozenset[str] | None


def check_agreement(held: tuple[str, int], *, isa_id: str, isa_version: int | None) -> None:
    """Refuse a message shared under an agreement other than ``held`` (its id, version):
    the receiver can judge it only by rules it holds. Raises ``PolicyDenied``:
    ``policy.no-agreement`` (another agreement), ``policy.agreement-version`` (a newer
    version, not received here yet: the refusal can pass) or
    ``policy.agreement-superseded`` (an older version, whose rules no longer hold: final).
    ``isa_version`` None checks the id alone."""
    held_id, held_version = held
    if isa_id != held_id:
        raise PolicyDenied(
            f"message was shared under agreement {isa_id}; this agency holds no such "
            f"agreement (only {held_id})",
            code="policy.no-agreement",
        )
    if isa_version is None or isa_version == held_version:
        return
    if isa_version > held_version:
        raise PolicyDenied(
            f"message was shared under agreement {isa_id} v{isa_version}; this agency holds "
            f"v{held_version} and cannot judge it by rules it does not have yet",
            code="policy.agreement-version",
        )
    raise PolicyDenied(
        f"message was shared under agreement {isa_id} v{isa_version}, superseded by "
        f"v{held_version} here: its rules no longer hold",
        code="policy.agreement-superseded",
    )


@dataclass(frozen=True)
class Disclosure:
    """One recipient of one message, and the view it is entitled to."""

    recipient: AgencyEntry
    view: ViewKind
    rule: ShareRule

    @property
    def redaction(self) -> str:
        """The named field set removed from this recipient's view (redacted views only)."""
        return self.rule.redaction_set


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
                f"no agreement in force covers area {area} (agreement {self.agreement.id} "
                f"covers {', '.join(self.agreement.areas)}): nothing may be shared there",
                code="policy.no-agreement",
            )

    def authorise_publish(
        self, sender: AgencyEntry, message_type: str, area: str, today: date
    ) -> None:
        self.check_in_force(today)
        if area not in sender.areas:
            raise PolicyDenied(
                f"{sender.agency_id} does not operate in {area}", code="policy.area-not-covered"
            )
        self.check_area(area)
        self.party(sender.agency_id)
        allowed = next(
            (p.roles for p in self.agreement.publishers if p.message_type == message_type), ()
        )
        if sender.role not in allowed:
            raise PolicyDenied(
                f"a {sender.role.value} agency may not publish {message_type} under "
                f"{self.agreement.id}",
                code="policy.publish-not-allowed",
            )

    def check_case_load(self, sender: AgencyEntry, message_type: str, team: Team) -> None:
        """Refuse a message about a subject outside the sender's case load."""
        rule = next((p for p in self.agreement.publishers if p.message_type == message_type), None)
        if rule is None or not rule.case_load_required:
            return
        if sender.role in AREA_WIDE_CASE_LOAD:
            return
        if team is None or sender.agency_id not in team:
            raise PolicyDenied(
                f"{sender.agency_id} is not on this subject's case team, so the subject is "
                f"outside its case load: it may not publish {message_type} about them",
                code="policy.outside-case-load",
            )

    def rule_for(self, recipient: AgencyEntry, message_type: str) -> ShareRule | None:
        """The party's rule for ``message_type``, whatever the case team says."""
        if recipient.agency_id not in self._parties:
            return None
        rule = self._rules.get((message_type, recipient.role))
        if rule is None or rule.access is Access.NONE:
            return None
        return rule

    def entitlement(
        self, recipient: AgencyEntry, message_type: str, team: Team = None
    ) -> ShareRule | None:
        """The rule that gives ``recipient`` a view of ``message_type``, if any: a rule
        that requires an active role on the case applies only to members of ``team``."""
        rule = self.rule_for(recipient, message_type)
        if rule is None:
            return None
        if rule.active_role_required and (team is None or recipient.agency_id not in team):
            return None
        return rule

    def recipients(
        self, sender: AgencyEntry, message_type: str, area: str, team: Team = None
    ) -> list[Disclosure]:
        out = []
        for agency in self.directory.agencies(area=area):
            if agency.agency_id == sender.agency_id:
                continue
            rule = self.entitlement(agency, message_type, team)
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
        team: Team = None,
        isa_id: str | None = None,
        isa_version: int | None = None,
        judge_team: bool = True,
    ) -> ShareRule:
        """Raise unless the sender could publish this and ``recipient`` may hold ``view``.

        ``team`` is the recipient's own record of the case team; for a case-team
        message the caller checks membership against the message itself, after opening
        it (``check_team``), since a joining agency is not yet on its own record.
        ``judge_team=False`` skips the case-team checks: they judge whether a delivery was
        right when it was made, not whether a record lawfully held may be opened later.
        ``isa_id`` and ``isa_version``, where given, must name the agreement held
        (``check_agreement``)."""
        if isa_id is not None:
            held = (self.agreement.id, self.agreement.version)
            check_agreement(held, isa_id=isa_id, isa_version=isa_version)
        self.authorise_publish(sender, message_type, area, today)
        if judge_team and team is not None:
            # Judged only where this agency knows the team: without a record it cannot tell.
            try:
                self.check_case_load(sender, message_type, team)
            except PolicyDenied as exc:
                raise PolicyDenied(
                    f"{exc.reason}: breach by the sender", code="policy.breach-outside-case-load"
                ) from None
        rule = self.rule_for(recipient, message_type)
        if judge_team and rule is not None and message_type != CASE_TEAM_TYPE:
            self.check_team(recipient, rule, team, sender=sender.agency_id)
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

    def check_team(
        self, recipient: AgencyEntry, rule: ShareRule, team: Team, *, sender: str
    ) -> None:
        """Refuse what needs an active role on the case if ``recipient`` is not on ``team``."""
        if rule.active_role_required and (team is None or recipient.agency_id not in team):
            raise PolicyDenied(
                f"{rule.message_type} reaches only agencies on the subject's case team, and "
                f"{recipient.agency_id} is not on it by its own record: breach by {sender}",
                code="policy.breach-not-on-case-team",
            )

    def check_case_team(self, members: Mapping[str, str], area: str) -> None:
        """Refuse a case team naming an agency that is not an active party in ``area``
        under the role the directory gives it: need to know rests on this list."""
        for agency_id, role in sorted(members.items()):
            try:
                entry = self.directory.active_agency(agency_id)
            except VerificationError as exc:
                raise PolicyDenied(
                    f"case team names {agency_id}: {exc.reason}", code="policy.case-team-invalid"
                ) from None
            problem = None
            if entry.role.value != role:
                problem = f"is a {entry.role.value} agency, not {role}"
            elif area not in entry.areas:
                problem = f"does not operate in {area}"
            elif agency_id not in self._parties:
                problem = f"is not a party to agreement {self.agreement.id}"
            if problem is not None:
                raise PolicyDenied(
                    f"case team names {agency_id}, which {problem}",
                    code="policy.case-team-invalid",
                )
