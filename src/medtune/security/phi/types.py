"""The identifier types medtune redacts and the span they occupy in a text.

One type per HIPAA Safe Harbor identifier that occurs in text (45 CFR 164.514(b)(2)); biometric
identifiers and full-face photographs do not occur in text and have no type here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class PhiType(str, Enum):
    NAME = "NAME"                # (A) names
    LOCATION = "LOCATION"        # (B) geographic subdivisions smaller than a state; facilities
    DATE = "DATE"                # (C) all elements of dates except the year
    AGE = "AGE"                  # (C) ages over 89
    PHONE = "PHONE"              # (D)
    FAX = "FAX"                  # (E)
    EMAIL = "EMAIL"              # (F)
    SSN = "SSN"                  # (G)
    MRN = "MRN"                  # (H) medical record numbers
    HEALTH_PLAN = "HEALTH_PLAN"  # (I) health plan beneficiary numbers
    ACCOUNT = "ACCOUNT"          # (J) account numbers
    LICENSE = "LICENSE"          # (K) certificate/license numbers
    VEHICLE = "VEHICLE"          # (L) vehicle identifiers, serial numbers, licence plates
    DEVICE = "DEVICE"            # (M) device identifiers and serial numbers
    URL = "URL"                  # (N)
    IP = "IP"                    # (O)
    ID = "ID"                    # (R) any other unique identifying number or code


@dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int
    type: PhiType

    def to_json(self) -> dict:
        return {"start": self.start, "end": self.end, "type": self.type.value}
