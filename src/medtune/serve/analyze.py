"""``/v1/analyze_case``: a case in, a schema-valid analysis out, with a confidence that means something.

The prompt is exactly what training and evaluation use (``data.render.build_messages`` of a
record made from the case, with the system prompt the model was trained with: ``Backend.trained_system_prompt``,
unless ``serve.system_prompt`` overrides it), so a medtune-tuned model sees its own format.

* **With options** the confidence is the option probability by log-likelihood, computed as
  ``eval``'s loglik protocol does (``chat_loglik_request``: the chat prompt, the trained answer
  cue "The answer is (", each option letter; softmax over their summed log-probabilities). The
  differential is the options ranked by that probability. One greedy answer gives the reasoning
  and red flags; if the letter it states differs from the likelihood ranking, that is a review
  reason. A backend without log-likelihoods (an upstream endpoint) falls back to sample agreement.
* **Open questions**: k sampled answers; the confidence is the share that agree with the most
  common final answer (normalized text), the differential their answers by frequency, then any
  diagnoses the reasoning names under "Differential:".

Each generated text is read as the assistant turn (``data.render.assistant_text``, as eval's runners
and the GRPO rewards read theirs): an R1-style template opens ``<think>`` in the generation prompt,
so the opener is put back, and reasoning cut off by ``max_tokens`` is never read as the answer.

Text that does not parse still yields a valid document: ``raw_text`` and ``parse_error`` are set,
the unparsed fields are empty, and ``needs_human_review`` is true.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from ..data.records import Answer, Record
from ..data.render import assistant_text, build_messages, split_reasoning
from ..eval.extract import extract_answer
from ..eval.runners import chat_loglik_request
from .backends import Prompt, SamplingParams
from .case_schema import (
    AnalyzeCaseRequest,
    CaseAnalysis,
    Confidence,
    DifferentialItem,
    FinalAnswer,
    ModelInfo,
    Usage,
)
from .context import RequestContext

DEFAULT_QUESTION = "What is the most likely diagnosis?"
OnDelta = Callable[[str], Awaitable[None]]
_SECTION_END = r"(?=\n|(?:Next step|Conclusion|Key findings|Differential|Red flags)\s*:|$)"
_RED_FLAGS = re.compile(r"red flags?\s*:\s*(.+?)" + _SECTION_END, re.I | re.S)
_DIFFERENTIAL = re.compile(r"differential(?: diagnos[ie]s)?\s*:\s*(.+?)" + _SECTION_END, re.I | re.S)
_ANSWER_CUE = re.compile(r"^(?:the\s+)?(?:final\s+|most likely\s+)?(?:answer|diagnosis)\s*(?:is|:)\s*", re.I)


def case_record(body: AnalyzeCaseRequest) -> Record:
    """The case as a record, for the training/eval prompt builders. Built unvalidated: the answer is what
    we ask for (the request body was validated already)."""
    return Record.model_construct(id="case", source="serve", task="mcq" if body.options else "diagnosis",
                                  question=(body.question or DEFAULT_QUESTION).strip(), context=body.case.strip(),
                                  options=body.options, answer=Answer.model_construct(letter=None, text=None),
                                  reasoning=None, response=None, metadata={})


def split_items(text: str) -> list[str]:
    """'chest pain radiating to the back, pulse deficit and syncope.' -> three items.

    >>> split_items("tearing chest pain, pulse deficit and new aortic regurgitation.")
    ['tearing chest pain', 'pulse deficit', 'new aortic regurgitation']
    """
    text = text.strip().rstrip(".").strip()
    parts = re.split(r";|,|\band\b|\bor\b", text)
    return [p.strip(" .*-") for p in parts if p.strip(" .*-") and p.strip().lower() not in ("none", "n/a")]


def red_flags(text: str) -> list[str]:
    return [item for m in _RED_FLAGS.finditer(text) for item in split_items(m.group(1))][:12]


def differential_names(text: str) -> list[str]:
    """Diagnoses named in "Differential:" sections ("X is less likely (...)", or a plain list)."""
    names = []
    for m in _DIFFERENTIAL.finditer(text):
        body = re.sub(r"\([^)]*\)", "", m.group(1))
        for sentence in re.split(r"(?<=\.)\s+", body):
            head = re.split(r"\s+(?:is|are|was|seems|remains)\s+", sentence, maxsplit=1)[0]
            names += [x for x in split_items(head) if len(x) < 80]
    return list(dict.fromkeys(names))[:10]


def open_answer(text: str, fmt: str) -> str | None:
    """The final answer of an open question: the final part's first line, without an answer cue."""
    _, final = split_reasoning(text, fmt)
    final = re.sub(r"[*_`]+", "", final)  # markdown emphasis
    line = next((ln.strip(" #-") for ln in final.splitlines() if ln.strip(" #-")), "")
    line = re.split(r"[.!?](?:\s|$)", _ANSWER_CUE.sub("", line))[0].strip(" .")
    return line or None


def _norm(answer: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", answer.lower()).strip()


class CaseAnalyzer:
    """Runs one analysis through the gateway (the same queue, timeout and text recording as every route)."""

    def __init__(self, gateway: Any, settings: Any):
        self.gateway, self.settings = gateway, settings
        self.backend = gateway.backend

    def _messages(self, record: Record) -> list[dict[str, Any]]:
        """The eval prompt of ``record``: with the system prompt the model was trained with unless
        ``serve.system_prompt`` overrides it ("" = none), as ``eval.identity.describe_model`` chooses."""
        system = self.settings.system_prompt
        if system is None:
            system = self.backend.trained_system_prompt
        return build_messages(record, self.backend.reasoning_format, system, with_answer=False)

    def prepare(self, ctx: RequestContext, body: AnalyzeCaseRequest) -> tuple[Record, Any, int]:
        """Checks that can refuse the request (model name, context length) before any response starts."""
        self.gateway.check_model(body.model)
        record = case_record(body)
        prepared, max_tokens = self.gateway.prepare(ctx, Prompt(messages=self._messages(record)),
                                                    body.max_tokens or self.settings.analyze_max_tokens)
        return record, prepared, max_tokens

    async def analyze(self, ctx: RequestContext, body: AnalyzeCaseRequest, request: Any = None,
                      on_delta: OnDelta | None = None, planned: tuple[Record, Any, int] | None = None,
                      ticket: Any = None) -> CaseAnalysis:
        record, prepared, max_tokens = planned or self.prepare(ctx, body)
        ticket = ticket or self.gateway.admit()  # the scoring and the generation hold one place in the queue
        try:
            option_probs = None
            if body.options and self.backend.supports_loglik:
                option_probs = await self._option_probs(record, prepared)
            k = 1 if option_probs is not None else (body.samples or self.settings.analyze_samples)
            params = SamplingParams(max_tokens=max_tokens, n=k, seed=body.seed,
                                    temperature=0.0 if k == 1 else self.settings.analyze_temperature)
            texts, finish = await self._generate(ctx, prepared, params, request, on_delta, ticket)
        finally:
            ticket.release()
        rendered = self._rendered(prepared)
        texts = [assistant_text(rendered, t) for t in texts]  # a reasoning opener the template put in the prompt
        doc = self._document(ctx, record, texts, finish, option_probs)
        return CaseAnalysis.model_validate(doc)

    async def _option_probs(self, record: Record, prepared: Any) -> dict[str, float]:
        # The scored context is the prepared prompt (what the gateway let through, e.g. after a PHI
        # policy), rendered again: never a second copy built from the raw request.
        backend_like = SimpleNamespace(prompt=lambda _record, _system=None: self._rendered(prepared),
                                       reasoning_format=self.backend.reasoning_format)
        context, letters = chat_loglik_request(backend_like, record)
        logprobs = await self.backend.score_options(context, letters)
        top = max(logprobs)
        exps = [math.exp(x - top) for x in logprobs]  # ChoiceScores.probs: softmax over summed log-probabilities
        return {k: e / sum(exps) for k, e in zip(letters, exps)}

    def _rendered(self, prepared: Any) -> str:
        """The prompt text the model continues (chat template applied); "" behind an upstream, which applies its own.

        An R1-style template ends it with ``<think>``, so the generated text starts inside the reasoning: the
        answer is read from ``assistant_text(rendered, text)``, as eval and the GRPO rewards read theirs."""
        render = getattr(self.backend, "render", None)
        return render(prepared.prompt) if render is not None else ""

    async def _generate(self, ctx: RequestContext, prepared: Any, params: SamplingParams, request: Any,
                        on_delta: OnDelta | None, ticket: Any) -> tuple[list[str], list[str | None]]:
        if on_delta is None:
            choices = await self.gateway.complete(ctx, prepared, params, request, ticket)
            return [c.text for c in choices], [c.finish_reason for c in choices]
        import contextlib

        texts, finish = [""] * params.n, [None] * params.n
        async with contextlib.aclosing(self.gateway.run(ctx, prepared, params, ticket)) as events:
            async for event in events:
                if hasattr(event, "text"):
                    texts[event.index] += event.text
                    if event.index == 0 and event.text:
                        await on_delta(event.text)
                else:
                    finish[event.index] = event.finish_reason
        return texts, finish

    def _document(self, ctx: RequestContext, record: Record, texts: list[str], finish: list[str | None],
                  option_probs: dict[str, float] | None) -> dict[str, Any]:
        fmt = self.backend.reasoning_format
        raw = texts[0]
        doc: dict[str, Any] = {
            "request_id": ctx.request_id, "created": int(time.time()), "question": record.question,
            "model": ModelInfo(**self.gateway.identity.public()).model_dump(), "raw_text": raw,
            "confidence_threshold": self.settings.confidence_threshold,
            "usage": Usage(prompt_tokens=ctx.prompt_tokens, completion_tokens=ctx.completion_tokens).model_dump(),
        }
        reasons: list[str] = []
        try:
            reasoning, _ = split_reasoning(raw, fmt)
            doc["reasoning"] = reasoning or None
            doc["red_flags"] = red_flags(raw)
            if record.options:
                part = self._with_options(record.options, texts, fmt, option_probs, reasons)
            else:
                part = self._open(texts, fmt, reasons)
            doc.update(part)
        except Exception as e:  # a parser bug must not cost the clinician the raw answer
            doc.update(reasoning=None, red_flags=[], differential=[], final_answer=FinalAnswer(text=None).model_dump(),
                       confidence=Confidence(value=None, method="option_loglik" if option_probs else "sample_agreement").model_dump(),
                       parse_error=f"analysis failed: {type(e).__name__}: {e}")
        if doc.get("parse_error"):
            reasons.append("the answer could not be parsed")
        value = doc["confidence"]["value"]
        if value is not None and value < self.settings.confidence_threshold:
            reasons.insert(0, f"confidence {value:.2f} is under the threshold {self.settings.confidence_threshold:.2f}")
        if "length" in finish:
            reasons.append("the answer was cut off at max_tokens")
        doc["review_reasons"], doc["needs_human_review"] = reasons, bool(reasons) or value is None
        return doc

    def _with_options(self, options: dict[str, str], texts: list[str], fmt: str, probs: dict[str, float] | None,
                      reasons: list[str]) -> dict[str, Any]:
        extractions = [extract_answer(t, options, fmt) for t in texts]
        stated = extractions[0].letter
        if probs is not None:
            ranked = sorted(probs, key=lambda k: -probs[k])
            best = ranked[0]
            confidence = Confidence(value=round(probs[best], 6), method="option_loglik")
            if stated and stated != best:
                reasons.append(f"the generated answer ({stated}) differs from the most likely option by log-likelihood ({best})")
        else:
            votes = Counter(e.letter for e in extractions if e.letter)
            shares = {k: votes.get(k, 0) / len(texts) for k in options}
            ranked = sorted(options, key=lambda k: -shares[k])
            best = ranked[0] if votes else None
            probs = shares
            confidence = Confidence(value=round(shares[best], 6) if best else None, method="sample_agreement",
                                    samples=len(texts), votes=dict(votes))
        differential = [DifferentialItem(rank=i + 1, diagnosis=options[k], letter=k, probability=round(probs[k], 6))
                        for i, k in enumerate(ranked)]
        parse_error = None if stated else (f"no option letter could be read from the answer ({extractions[0].status})")
        return {"final_answer": FinalAnswer(text=options[best] if best else None, letter=best).model_dump(),
                "differential": [d.model_dump() for d in differential], "confidence": confidence.model_dump(),
                "parse_error": parse_error}

    def _open(self, texts: list[str], fmt: str, reasons: list[str]) -> dict[str, Any]:
        answers = [open_answer(t, fmt) for t in texts]
        votes = Counter(_norm(a) for a in answers if a)
        spelled = {_norm(a): a for a in reversed([a for a in answers if a])}  # first spelling of each answer
        differential = [DifferentialItem(rank=i + 1, diagnosis=spelled[key], probability=round(n / len(texts), 6))
                        for i, (key, n) in enumerate(votes.most_common())]
        seen = set(votes)
        for name in differential_names(texts[0]):
            if _norm(name) not in seen:
                seen.add(_norm(name))
                differential.append(DifferentialItem(rank=len(differential) + 1, diagnosis=name, probability=None))
        best = votes.most_common(1)[0] if votes else None
        confidence = Confidence(value=round(best[1] / len(texts), 6) if best else None, method="sample_agreement",
                                samples=len(texts), votes={spelled[k]: n for k, n in votes.items()})
        return {"final_answer": FinalAnswer(text=spelled[best[0]] if best else None).model_dump(),
                "differential": [d.model_dump() for d in differential], "confidence": confidence.model_dump(),
                "parse_error": None if answers[0] else "the answer has no final statement to read"}
