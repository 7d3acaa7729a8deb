"""The roles a user holds, and what each one needs and may see.

One role per user. A role says what the person is for; the console that serves them
decides each page from these properties, never from a role's name.
"""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    """A user's role in their agency."""

    # Works the agency's cases: reads what is delivered to the agency, in its views.
    AGENCY_USER = "agency-user"
    # Manages their own agency's users; holds the agency's most powerful account.
    AGENCY_ADMIN = "agency-admin"
    # The MAPPA co-ordination unit: runs the case teams and meetings of an area.
    COORDINATOR = "coordinator"
    # Information governance: sees the audit ledger (who did what, when, why), never a
    # message's content.
    IG_OFFICER = "ig-officer"

    @property
    def requires_second_factor(self) -> bool:
        """Whether signing in needs a TOTP code as well as the password: for the roles
        that administer accounts or see the whole audit trail."""
        return self in (Role.AGENCY_ADMIN, Role.IG_OFFICER)

    @property
    def sees_message_content(self) -> bool:
        """Whether the role may open a message's content at all (the agreement and the
        view still decide which content)."""
        return self is not Role.IG_OFFICER

    @property
    def sees_audit_ledger(self) -> bool:
        """Whether the role may read the audit ledger."""
        return self is Role.IG_OFFICER
