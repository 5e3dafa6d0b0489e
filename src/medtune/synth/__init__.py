"""Synthetic clinical cases from the knowledge base (``medtune synth``).

Public entry points: :func:`run_synth` (files for a run), :func:`generate_records` and
:func:`generate_cases` (streams), :func:`load_kb` (validated knowledge base).
"""

from .engine import generate_cases, generate_records
from .kb import KBError, load_kb
from .run import preview_text, run_synth, run_synth_section

__all__ = ["KBError", "generate_cases", "generate_records", "load_kb", "preview_text", "run_synth", "run_synth_section"]
