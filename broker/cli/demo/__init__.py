"""The demos: one area end to end (``scenario``, ``report``, ``command``: `mappa demo`),
and an offender moving between two areas (``transfer``: `mappa transfer demo`)."""

from broker.cli.demo.command import register

__all__ = ["register"]
