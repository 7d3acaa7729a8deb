"""Information-sharing agreements as code: the template, signed documents, checks."""

from broker.agreements.documents import (
    load_agreement,
    save_agreement,
    sign_agreement,
    verify_agreement,
)
from broker.agreements.template import (
    agreement_for_area,
    default_agreements,
    lawful_basis_for,
    read_agreement,
    template_data,
)

__all__ = [
    "agreement_for_area",
    "default_agreements",
    "lawful_basis_for",
    "load_agreement",
    "read_agreement",
    "save_agreement",
    "sign_agreement",
    "template_data",
    "verify_agreement",
]
