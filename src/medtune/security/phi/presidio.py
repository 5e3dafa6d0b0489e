"""Presidio's pattern recognizers, when presidio-analyzer is installed (optional, offline).

Only recognizers that need neither an NLP model nor the network are used; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable

from .patterns import Hit
from .types import PhiType

PRESIDIO_TYPES = {
    "US_SSN": PhiType.SSN, "PHONE_NUMBER": PhiType.PHONE, "IP_ADDRESS": PhiType.IP, "CREDIT_CARD": PhiType.ACCOUNT,
    "US_BANK_NUMBER": PhiType.ACCOUNT, "IBAN_CODE": PhiType.ACCOUNT, "US_DRIVER_LICENSE": PhiType.LICENSE,
    "MEDICAL_LICENSE": PhiType.LICENSE, "US_PASSPORT": PhiType.ID, "US_ITIN": PhiType.ID,
}
PRIORITY = 20  # below medtune's own cue-based types, above the bare-number fallback
MIN_SCORE = 0.4


def presidio_recognizer() -> Callable[[str], list[Hit]] | None:
    """A function text -> hits from Presidio's pattern recognizers, or None when Presidio is absent."""
    try:
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            IbanRecognizer,
            IpRecognizer,
            MedicalLicenseRecognizer,
            UsBankRecognizer,
            UsItinRecognizer,
            UsLicenseRecognizer,
            UsPassportRecognizer,
            UsSsnRecognizer,
        )
    except ImportError:  # the optional extra is not installed
        return None

    recognizers = [cls() for cls in (UsSsnRecognizer, IpRecognizer, CreditCardRecognizer, UsBankRecognizer, IbanRecognizer,
                                     UsLicenseRecognizer, MedicalLicenseRecognizer, UsPassportRecognizer, UsItinRecognizer)]

    def find(text: str) -> list[Hit]:
        hits = []
        for rec in recognizers:
            for r in rec.analyze(text, rec.supported_entities, None):
                if r.score >= MIN_SCORE and r.entity_type in PRESIDIO_TYPES:
                    hits.append(Hit(r.start, r.end, PRESIDIO_TYPES[r.entity_type], PRIORITY))
        return hits

    return find
