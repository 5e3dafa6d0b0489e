"""medtune: medical reasoning fine-tuning, evaluation, export and serving for small open LLMs.

Research use only. Nothing medtune produces is a medical device or clinical advice.
"""

__version__ = "0.1.0"

DISCLAIMER = (
    "Research use only: this output comes from an experimental language model, may be wrong, "
    "and is not medical advice. Do not use it for diagnosis or treatment decisions."
)
