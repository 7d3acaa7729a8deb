"""What every agency adapter does; each kind supplies its own record mapping."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import ValidationError

from broker.errors import SchemaError
from broker.gateway import AgencyGateway
from broker.publish import PublishResult
from schemas.common import Role, ViewKind
from schemas.messages import MessageBody


def uk_date(text: str) -> str:
    """dd/mm/yyyy, as most agency systems export dates, to ISO 8601."""
    try:
        day, month, year = text.split("/")
        return f"{int(year):04d}-{int(month):02d}-{int(day):02d}"
    except ValueError:
        raise SchemaError(f"expected a date as dd/mm/yyyy, got {text!r}") from None


class AgencyAdapter(ABC):
    role: ClassVar[Role]
    # The name of the agency system whose export format this adapter reads.
    system: ClassVar[str]

    def __init__(self, gateway: AgencyGateway) -> None:
        if gateway.ctx.entry.role is not self.role:
            raise SchemaError(
                f"{type(self).__name__} is for {self.role.value} agencies, "
                f"not {gateway.ctx.entry.role.value}"
            )
        self.gateway = gateway

    @property
    def agency_id(self) -> str:
        return self.gateway.agency_id

    def to_canonical(self, record: Mapping[str, Any]) -> MessageBody:
        """Map one record of the agency's system to a canonical message."""
        try:
            return self._to_canonical(record)
        except (KeyError, TypeError, AttributeError) as exc:
            raise SchemaError(
                f"{self.system} record is missing or mistypes field {exc}",
                code="adapter.record-invalid",
            ) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            raise SchemaError(
                f"{self.system} record maps to an invalid message at "
                f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}",
                code="adapter.record-invalid",
            ) from None

    def _to_canonical(self, record: Mapping[str, Any]) -> MessageBody:
        raise SchemaError(
            f"{self.system} records are not published by this adapter",
            code="adapter.publish-not-supported",
        )

    @abstractmethod
    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        """Map a received message, in the view delivered, to the agency's format."""

    async def submit(
        self, record: Mapping[str, Any], *, purpose: str, user: str | None = None
    ) -> PublishResult:
        return await self.gateway.publish(self.to_canonical(record), purpose=purpose, user=user)

    async def open(self, message_id: str, *, user: str, justification: str) -> dict[str, Any]:
        opened = await self.gateway.consult(message_id, user=user, justification=justification)
        return self.from_canonical(opened.body, opened.view)
