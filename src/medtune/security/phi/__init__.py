"""PHI detection and redaction for the HIPAA Safe Harbor identifiers that occur in text."""

from .types import PhiType, Span

__all__ = ["PhiType", "Span"]
