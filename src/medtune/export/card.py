"""Model card (README.md with YAML front matter) for an exported model.

Hugging Face reads the front matter (base_model, datasets, tags, license); people read
the rest. Every number carries its protocol next to it, and the card says plainly
what the model is not: a medical device or a source of clinical advice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, StrictUndefined

from .. import DISCLAIMER
from ..utils.io import atomic_write_text
from .common import Provenance

log = logging.getLogger(__name__)

CARD = """---
{{ front_matter }}---

# {{ name }}

{{ disclaimer }}

A medical-reasoning fine-tune of `{{ prov.base_model }}` made with medtune {{ prov.medtune_version }}.

## Recipe

| field | value |
|---|---|
| base model | `{{ prov.base_model }}` |
| method | {{ prov.method or "n/a" }} |
| run id | {{ prov.run_id or "n/a" }} |
| reasoning format | {{ prov.reasoning_format }} |
| training data | {{ (prov.datasets or ["n/a"]) | join(", ") }} |
| data manifest sha256 | `{{ prov.data_manifest_sha256 or "n/a" }}` |
| adapter sha256 | `{{ prov.adapter_sha256 or "n/a" }}` |
{% for key, value in recipe.items() %}| {{ key }} | {{ value }} |
{% endfor %}
## Evaluation

{% if evals %}| benchmark | protocol | accuracy (95% Wilson CI) | n | base model, same items | results |
|---|---|---|---|---|---|
{% for r in evals %}| {{ r.benchmark }} | {{ r.protocol }} | {{ r.accuracy }} ({{ r.ci }}) | {{ r.n }} | {{ r.base }} | `{{ r.folder }}` |
{% endfor %}
{% for name, text in protocols.items() %}- {{ name }}: {{ text }}
{% endfor %}
Only summaries whose model identity (sha256 of the model's files) is this model's are listed.
{% else %}No evaluation of this model was found next to its training run (`medtune eval` writes one). Do not assume any accuracy.
{% endif %}
## Files

{% if files %}| file | type | size (MB) | greedy agreement vs HF | exact prompts | perplexity (HF -> GGUF) | verified |
|---|---|---|---|---|---|---|
{% for f in files %}| `{{ f.name }}` | {{ f.type }} | {{ f.mb }} | {{ f.agreement }} | {{ f.exact }} | {{ f.ppl }} | {{ f.verified }} |
{% endfor %}
Verification protocol: {{ verify_protocol }}
{% else %}Only the merged Hugging Face folder was exported.
{% endif %}
## Intended use

Research on medical question answering and reasoning: benchmarking, studying failure
modes, teaching. Outputs must be read by a qualified person and never acted on directly.

## Limitations

- Small fine-tunes reproduce the style of their training data more reliably than its facts;
  answers can be confidently wrong, outdated, or biased toward the populations in the data.
- Benchmark accuracy (multiple-choice exam questions) is not clinical performance and was not
  measured on real patients.
- Quantized files (Q8_0, Q4_K_M, ...) behave close to, not identically to, the merged model; see the table above.
- No safety tuning beyond the base model's; no protection against prompt injection.

## Disclaimer

{{ disclaimer }} Not a medical device; not validated for clinical use.
"""

def verify_protocol(verify_rows: list[dict[str, Any]]) -> str:
    """The verification protocol and its pass rule as ``verify`` applies them (the rule is ``verify.pass_rule``)."""
    from .verify import load_verify_set, pass_rule

    vs = load_verify_set()
    n = verify_rows[0]["n_tokens"] if verify_rows else 32
    stored = verify_rows[0].get("reference_dtype", "float32") if verify_rows else "float32"
    return (f"{len(vs['prompts'])} fixed prompts from medtune's export_verify.yaml rendered with the chat template; "
            f"{n} greedy tokens (no EOS stop); agreement = teacher-forced top-1 agreement with the merged HF model "
            f"(weights stored in {stored}, run in fp32 by transformers); perplexity over a fixed "
            f"{len(vs['conversation'])}-turn conversation. Pass: {pass_rule()}.")


def load_eval_results(eval_dirs: list[Path], identity: str, base_identity: str | None = None) -> list[dict[str, Any]]:
    """Rows for the card from every ``summary.json`` under ``eval_dirs`` whose ``model_identity`` is ``identity``.

    A summary of ``base_identity`` on the same benchmark, protocol and item count (the compare layout's
    ``base/`` next to ``tuned/``, else any) fills the base column. Summaries of any other model are left out, so
    a card never shows another model's number. A summary ``report.collect.read_summary`` refuses (not JSON,
    a field missing) is skipped: the card still gets written, the table simply omits it.
    """
    from ..report.collect import ReportError, read_summary

    mine: list[tuple[Path, Path, dict[str, Any]]] = []
    base: dict[tuple[str, str], list[tuple[Path, dict[str, Any]]]] = {}
    for root in dict.fromkeys(d.resolve() for d in eval_dirs if d.is_dir()):
        for path in sorted(root.rglob("summary.json")):
            try:
                data = read_summary(path)
            except (OSError, ReportError) as e:
                log.warning("model card: skipping %s (%s)", path, e)
                continue
            if data.get("model_identity") == identity:
                mine.append((root, path, data))
            elif base_identity and data.get("model_identity") == base_identity:
                base.setdefault((data.get("benchmark"), data.get("protocol")), []).append((path, data))
    rows = []
    for root, path, data in mine:
        acc = data["accuracy"]
        same = base.get((data.get("benchmark"), data.get("protocol")), [])
        pairs = [(p, d) for p, d in same if d["accuracy"]["n"] == acc["n"]]
        twin = next((d for p, d in pairs if p.parent.parent == path.parent.parent), pairs[0][1] if pairs else None)
        style = data.get("harness_task") or data.get("loglik_style")
        rows.append({"benchmark": data.get("benchmark", path.parent.name),
                     "protocol": f"{data.get('protocol', 'not recorded')}{f' ({style})' if style else ''}",
                     "description": data.get("protocol_description") or "not recorded",
                     "accuracy": _accuracy(acc), "n": acc["n"], "ci": "-".join(f"{x:.3f}" for x in acc["ci95"]),
                     "base": _accuracy(twin["accuracy"]) if twin else "not evaluated",
                     "folder": str(path.parent.relative_to(root.parent))})
    return rows


def _accuracy(acc: dict) -> str:
    """An accuracy as the card shows it; an evaluation without scorable items has none."""
    return "no scorable items" if acc["accuracy"] is None else f"{acc['accuracy']:.4f}"


def card_eval_dirs(folder: Path) -> list[Path]:
    """Where a card finds its model's evaluations: FOLDER/eval, and the eval folder beside it (``medtune run``
    writes RUN_DIR/eval next to RUN_DIR/train)."""
    return [folder / "eval", folder.parent / "eval"]


CARD_FIELDS = ("model_identity", "benchmark", "protocol", "harness_task", "loglik_style", "protocol_description")


def eval_summaries_digest(run: Path) -> str:
    """A digest of what a run's card could cite from each summary.json (the fields its rows show and the identity
    they are matched by), read from the files: no identity is computed, so the export stage's up-to-date check
    needs neither the base model nor its tokenizer (a run folder copied to a machine without its base still finds
    its export up to date), and an evaluation re-run whose numbers did not move leaves the card as it is."""
    from ..report.collect import ReportError, read_summary

    h = hashlib.sha256()
    for root in dict.fromkeys(d.resolve() for d in card_eval_dirs(run) if d.is_dir()):
        for path in sorted(root.rglob("summary.json")):
            try:  # read as the card reads it (load_eval_results)
                data = read_summary(path)
                shown = [data.get(k) for k in CARD_FIELDS] + [data["accuracy"][k] for k in ("accuracy", "n", "ci95")]
            except (OSError, ReportError):  # one the card skips: a change of it still counts
                shown = [hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None]
            h.update(json.dumps([str(path.relative_to(root)), shown], sort_keys=True, default=str).encode())
    return "sha256:" + h.hexdigest()


def find_eval_results(run: Path | None, merged: Path | None = None) -> list[dict[str, Any]]:
    """This model's evaluations: RUN/eval and the eval folder beside RUN (``medtune run`` writes RUN_DIR/eval
    next to RUN_DIR/train), matched by model identity; for a merged folder exported alone, its own files'."""
    from ..eval.identity import describe_model, run_identities

    if run is not None:
        identity, base_identity = run_identities(run)
        return load_eval_results(card_eval_dirs(run), identity, base_identity)
    if merged is None:
        raise ValueError("find_eval_results needs a training run folder or a merged model folder")
    return load_eval_results(card_eval_dirs(merged), describe_model(str(merged)).identity)


def _base_identity(base: str) -> tuple[str, str]:
    """(Hub id, licence) for the front matter: presets map to their HF id and licence.

    >>> _base_identity("smollm2-135m")
    ('HuggingFaceTB/SmolLM2-135M-Instruct', 'apache-2.0')
    """
    from ..models.registry import find_preset_by_hf_id, load_presets

    preset = load_presets().get(base) or find_preset_by_hf_id(base)
    if preset is not None:
        return preset.hf_id, preset.license
    return base, "other"  # unknown base: the user must state its licence


def _front_matter(prov: Provenance) -> str:
    base, license_ = _base_identity(prov.base_model)
    meta = {"base_model": base, "license": license_, "library_name": "transformers",
            "tags": ["medtune", "medical", "reasoning", "gguf", "research-only"], "pipeline_tag": "text-generation"}
    if prov.datasets:
        meta["datasets"] = prov.datasets
    return yaml.safe_dump(meta, sort_keys=False)


def _file_rows(verify_rows: list[dict[str, Any]], gguf_files: list[Path]) -> list[dict[str, Any]]:
    by_path = {Path(r["gguf"]).name: r for r in verify_rows}
    rows = []
    for p in gguf_files:
        r = by_path.get(p.name, {})
        rows.append({"name": p.name, "type": r.get("type", p.stem.rsplit("-", 1)[-1].upper()),
                     "mb": round(p.stat().st_size / 2**20, 1),
                     "agreement": r.get("agreement", "not verified"),
                     "exact": f"{r['exact_prompts']}/{r['prompts']}" if r else "n/a",
                     "ppl": f"{r['ppl_hf']} -> {r['ppl_gguf']}" if r else "n/a",
                     "verified": {True: "pass", False: "FAIL", None: "reported"}.get(r.get("passed"), "n/a") if r else "no"})
    return rows


def write_model_card(out_dir: str | Path, prov: Provenance, name: str, evals: list[dict[str, Any]] | None = None,
                     gguf_files: list[Path] | None = None, verify_rows: list[dict[str, Any]] | None = None,
                     recipe: dict[str, Any] | None = None) -> Path:
    """Render README.md into ``out_dir``; ``evals`` are :func:`find_eval_results` rows. Returns its path."""
    env = Environment(undefined=StrictUndefined, keep_trailing_newline=True)
    text = env.from_string(CARD).render(
        front_matter=_front_matter(prov), name=name, prov=prov, disclaimer=DISCLAIMER, recipe=recipe or {},
        evals=evals or [], protocols={r["protocol"].split(" ")[0]: r["description"] for r in evals or []},
        files=_file_rows(verify_rows or [], gguf_files or []),
        verify_protocol=verify_protocol(verify_rows or []),
    )
    return atomic_write_text(Path(out_dir) / "README.md", text)
