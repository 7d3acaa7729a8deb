"""An agency's gateway onto Kafka: publish, receive, consult, relay, and what they keep.

``AgencyGateway`` is the front; below it, the sending half (``publish``, ``routing``
over the ``cases`` registry), the receiving half (``receive``, ``verification``), acts
after publication (``lifecycle``), the agency's own database (``store``), its audit
emitter (``audit``) and the outbox relay (``relay``).
"""

from broker.gateway.gateway import AgencyGateway

__all__ = ["AgencyGateway"]
