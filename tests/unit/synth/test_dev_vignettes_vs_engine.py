"""The dev vignettes share no template text with the engine: no 8-word shingle of any dev vignette
occurs in 10,000 engine cases (their stems and reasoning). The final question line of a dev item
("Which of the following is the most likely diagnosis?") is standard USMLE wording the engine
also uses, so only the vignette before it is compared."""

from __future__ import annotations

import re

import pytest

from medtune.eval.benchmarks import get_benchmark, load_benchmark_records
from medtune.synth import generate_cases

SHINGLE = 8
N_CASES = 10_000
_WORD = re.compile(r"[a-z0-9]+")


def shingles(text: str, n: int = SHINGLE) -> set[int]:
    words = _WORD.findall(text.lower())
    return {hash(" ".join(words[i:i + n])) for i in range(len(words) - n + 1)}


@pytest.fixture(scope="session")
def engine_shingles() -> set[int]:
    """Hashed 8-word shingles of 10,000 engine cases, built once per session."""
    out: set[int] = set()
    for case in generate_cases(N_CASES, seed=0):
        out |= shingles(case["vignette"])
        out |= shingles(" ".join(case["reasoning_steps"]))
    return out


def test_no_dev_vignette_shares_an_8_word_shingle_with_10000_engine_cases(engine_shingles):
    items = load_benchmark_records(get_benchmark("dev_vignettes"))
    shared = {}
    for r in items:
        vignette = r.question.rsplit("\n\n", 1)[0]
        words = _WORD.findall(vignette.lower())
        hits = [" ".join(words[i:i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)
                if hash(" ".join(words[i:i + SHINGLE])) in engine_shingles]
        if hits:
            shared[r.id] = hits
    assert len(engine_shingles) > 100_000  # the index really holds the engine's text
    assert not shared, shared


def test_the_check_finds_a_copied_engine_sentence(engine_shingles):
    case = next(generate_cases(1, seed=0))
    assert shingles(case["vignette"]) <= engine_shingles
    assert not shingles("A sailor on a long voyage has bleeding gums, loose teeth and corkscrew hairs on his legs.") & engine_shingles
