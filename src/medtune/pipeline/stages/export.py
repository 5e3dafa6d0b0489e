"""The export stage: merge the adapter, write each export.gguf type, verify, Modelfile, card -> RUN/export.

The card cites this model's evaluations (``export.card.find_eval_results``), so they are an input of the
stage: when eval reruns alone (a new eval setting) and the numbers the card cites change, ``medtune run``
refreshes the stage, which rewrites the card alone from export_summary.json; the merged model and the
GGUF files are not made again (their inputs did not change).
"""

from __future__ import annotations

from pathlib import Path

from ...config.load import ConfigProblem
from ...config.schema import RunConfig
from ..registry import Context, Stage, StageError, register
from ..results import ExportOutput, TrainOutput


def _run(ctx: Context, resume: bool) -> ExportOutput:
    from ...export import export_run
    from ...export.pipeline import verify_status

    train, x = ctx.need(TrainOutput, "export"), ctx.cfg.export
    out = ctx.layout.folder("export")
    ctx.echo(f"merge {train.output_dir}, GGUF {', '.join(x.gguf)}" + (", verify against the merged model" if x.verify else ""))
    summary = export_run(train.run_dir, out, x.gguf, verify=x.verify, modelfile=x.ollama, model_card=x.model_card)
    rows = summary.get("verify") or []
    for q, f in summary["files"].items():
        ctx.echo(f"{q}: {f['path']} ({f['bytes'] / 2**20:.1f} MiB)")
    for r in rows:
        ctx.echo(f"verify {r['type']}: {r['exact_prompts']}/{r['prompts']} prompts exact, agreement {r['agreement']:.3f}, "
                 f"{'pass' if r['passed'] else 'FAIL' if r['passed'] is False else 'reported'}")
    if summary.get("verify_skipped"):
        ctx.echo(f"unverified: {summary['verify_skipped']}")
    if any(r["passed"] is False for r in rows):
        raise StageError(f"export verification failed; see {out / 'export_summary.json'} (`medtune export verify` for details)")
    verified = bool(rows) and all(r["passed"] is True for r in rows)
    checks = {q: verify_status([r for r in rows if r["gguf"] == f["path"]]) for q, f in summary["files"].items()}
    return ExportOutput(folder=out, merged=Path(summary["merged"]), files={q: Path(f["path"]) for q, f in summary["files"].items()},
                        verified=verified or None, checks=checks, modelfile=summary.get("modelfile"),
                        model_card=summary.get("model_card"))


CARD_EVALUATIONS = "evaluations in the model card"


def _refresh(ctx: Context, previous: ExportOutput) -> ExportOutput:
    """Only the evaluations the card cites changed: rewrite the card, keep the model files."""
    from ...export import rewrite_model_card

    card = rewrite_model_card(previous.folder, ctx.need(TrainOutput, "export").run_dir)
    ctx.echo(f"model card rewritten alone with the current evaluations -> {card} (merged model and GGUF files kept)")
    return previous.model_copy(update={"model_card": card})


def _inputs(ctx: Context) -> dict[str, Path | str]:
    from ...export.card import eval_summaries_digest

    train = ctx.need(TrainOutput, "export")
    out: dict[str, Path | str] = {"trained model": train.output_dir}
    if ctx.cfg.export.model_card:  # the evaluations the card may cite, so a new number reaches it
        out[CARD_EVALUATIONS] = eval_summaries_digest(train.run_dir)
    return out


def _preflight(cfg: RunConfig) -> list[ConfigProblem]:
    from ...export import ExportError, llama_cpp_available
    from ...export.common import LLAMA_CPP_HINT
    from ...export.quantize import needs_llama_cpp, normalize_quants

    try:
        quants = normalize_quants(cfg.export.gguf)
    except ExportError as e:
        return [ConfigProblem("export.gguf", str(e), "fix the type names")]
    kquants = [q for q in quants if needs_llama_cpp(q)]
    if kquants and not llama_cpp_available():
        return [ConfigProblem("export.gguf", f"{', '.join(kquants)} need llama-cpp-python", LLAMA_CPP_HINT)]
    return []


register(Stage("export", ExportOutput, reads=("export",), run=_run, inputs=_inputs, preflight=_preflight,
               refresh=_refresh, refresh_inputs=(CARD_EVALUATIONS,)))
