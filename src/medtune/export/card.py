"""Model card (README.md with YAML front matter) for an exported model.

Hugging Face reads the front matter (base_model, datasets, tags, license); people read
the rest. Every number carries its protocol next to it, and the card says plainly
what the model is not: a medical device or a source of clinical advice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, StrictUndefined

from .. import DISCLAIMER
from ..utils.io import atomic_write_text
from .common import Provenance

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

{% if evals %}| benchmark | metric | value | n | protocol |
|---|---|---|---|---|
{% for r in evals %}| {{ r.benchmark }} | {{ r.metric }} | {{ r.value }} | {{ r.n }} | {{ r.protocol }} |
{% endfor %}{% else %}No evaluation results were found in the run folder (`medtune eval` writes them). Do not assume any accuracy.
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

VERIFY_PROTOCOL = (
    "fixed prompts from medtune's export_verify.yaml rendered with the chat template; 32 greedy tokens "
    "(no EOS stop); agreement = teacher-forced top-1 agreement with the merged HF model (fp32, transformers); "
    "perplexity over a fixed 5-turn conversation. Pass: F16 all prompts exact, Q8_0 agreement >= 0.90, K-quants reported only."
)


def load_eval_results(run_dir: Path | None) -> list[dict[str, Any]]:
    """Rows (benchmark, metric, value, n, protocol) from RUN/eval/**/summary.json when present."""
    if run_dir is None or not (run_dir / "eval").is_dir():
        return []
    rows: list[dict[str, Any]] = []
    for path in sorted((run_dir / "eval").rglob("summary.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            continue  # a broken eval file must not block the card; the table simply omits it
        items = data.get("results", [data]) if isinstance(data, dict) else data
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            value = item.get("accuracy", item.get("value"))
            if value is None:
                continue
            rows.append({"benchmark": item.get("benchmark", path.parent.name), "metric": item.get("metric", "accuracy"),
                         "value": round(value, 4) if isinstance(value, float) else value, "n": item.get("n", "n/a"),
                         "protocol": item.get("protocol", "not recorded")})
    return rows


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


def write_model_card(out_dir: str | Path, prov: Provenance, name: str, run_dir: Path | None = None,
                     gguf_files: list[Path] | None = None, verify_rows: list[dict[str, Any]] | None = None,
                     recipe: dict[str, Any] | None = None) -> Path:
    """Render README.md into ``out_dir``; returns its path."""
    env = Environment(undefined=StrictUndefined, keep_trailing_newline=True)
    text = env.from_string(CARD).render(
        front_matter=_front_matter(prov), name=name, prov=prov, disclaimer=DISCLAIMER, recipe=recipe or {},
        evals=load_eval_results(run_dir), files=_file_rows(verify_rows or [], gguf_files or []),
        verify_protocol=VERIFY_PROTOCOL,
    )
    return atomic_write_text(Path(out_dir) / "README.md", text)
