"""The synth stage: synthetic cases from the knowledge base -> RUN/synth/records.jsonl (+ heldout.jsonl).

``style: cases`` is `medtune synth` (full vignettes, cases.jsonl, dataset card, optional teacher);
``style: demo`` writes the short focused records of ``synth/demo.py`` that a CPU can learn from
in minutes (the quickstart). Held-out cases come from seed + 1: new patients of the same
conditions, as lettered MCQ for evaluation. A seed + 1 case whose vignette equals a training
record's (the short demo stems coincide now and then across seeds) is not new: it is left out and
the next seed + 1 case takes its place, so the held-out set keeps its size and stays deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ...config.load import ConfigProblem
from ...config.schema import RunConfig
from ...config.sections.synth import SynthSection
from ...utils.io import atomic_write_jsonl
from ..registry import Context, Stage, register
from ..results import SynthOutput

RECORDS, HELDOUT = "records.jsonl", "heldout.jsonl"
_HELDOUT_DRAWS = 4  # at most this many seed + 1 cases per held-out item: a KB too small to fill the set stops short


def _training_vignettes(records: Path) -> set[str]:
    """The training records' cases (``synth.demo.case_key``: the vignette without its question line, numbers masked)."""
    from ...synth.demo import case_key

    with records.open(encoding="utf-8") as f:
        return {case_key(json.loads(line)["question"]) for line in f if line.strip()}


def _heldout(section: SynthSection, out: Path) -> tuple[Path | None, int, int]:
    """Lettered MCQ of ``heldout_cases`` new patients (seed + 1), in the style of the training records; also how many
    seed + 1 cases were replaced because their vignette is a training record's, numbers aside (``synth.demo.case_key``;
    ``_HELDOUT_DRAWS`` bounds the draws)."""
    if not section.heldout_cases:
        (out / HELDOUT).unlink(missing_ok=True)
        return None, 0, 0
    from ...synth.demo import case_key

    specialties, draws = section.specialties or None, _HELDOUT_DRAWS * section.heldout_cases
    if section.style == "demo":
        from ...synth.demo import demo_records

        # one record per case; case i is the same whatever the count, so later cases are the replacements
        stream = demo_records(draws, seed=section.seed + 1, specialties=specialties, tasks=("mcq",),
                              inline_share=0.0)  # keep the options lettered: strict letter extraction scores them
    else:
        from ...synth.engine import generate_records

        stream = generate_records(draws, section.seed + 1, specialties=specialties, tasks=["mcq"],
                                  kb_dirs=[section.kb_dir] if section.kb_dir else None, compact=section.compact)
    seen, kept, replaced = _training_vignettes(out / RECORDS), [], 0
    for r in stream:
        if len(kept) == section.heldout_cases:
            break
        if case_key(r.question) in seen:
            replaced += 1
        else:
            kept.append(r)
    count = atomic_write_jsonl(out / HELDOUT, (r.model_dump(mode="json") for r in kept))
    return out / HELDOUT, count, replaced


def _demo(section: SynthSection, out: Path) -> int:
    from ...data.manifest import build_manifest, file_entry, write_manifest
    from ...synth.demo import write_demo_training_set

    count = write_demo_training_set(out / RECORDS, n_cases=section.n, seed=section.seed,
                                    specialties=section.specialties or None, tasks=tuple(section.tasks),
                                    direct_share=section.direct_share, reasoning_order=section.reasoning_order)
    manifest = build_manifest("synth-demo", [], [file_entry(out / RECORDS, records=count)],
                              section.model_dump(mode="json"), {"records": count})
    write_manifest(out, {**manifest, "records": RECORDS})
    return count


def run_synth_stage(section: SynthSection, out: str | Path, echo: Callable[[str], None] | None = None) -> SynthOutput:
    """Run one synth section into ``out`` (what `medtune run` and `medtune synth -c` call); ``echo`` hears
    how many held-out cases were replaced for repeating a training vignette, or how many are missing."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if section.style == "demo":
        count = _demo(section, out)
    else:
        from ...synth import run_synth_section

        count = run_synth_section(section, out)["records"]
    heldout, n_heldout, replaced = _heldout(section, out)
    if echo and replaced:
        echo(f"held-out: {replaced} seed {section.seed + 1} case(s) left out, their vignette is a training record's "
             "(numbers aside); "
             + ("the next cases took their place" if n_heldout == section.heldout_cases
                else f"only {n_heldout} of {section.heldout_cases} new patients found"))
    return SynthOutput(folder=out, records=out / RECORDS, count=count, heldout=heldout, heldout_count=n_heldout)


def _run(ctx: Context, resume: bool) -> SynthOutput:
    s = ctx.cfg.synth
    ctx.echo(f"{s.n} cases ({s.style}{', compact' if s.compact else ''}, seed {s.seed}, "
             f"tasks {','.join(s.tasks)}"
             + (f", specialties {','.join(s.specialties)}" if s.specialties else "")
             + (f"), {s.heldout_cases} held-out cases (seed {s.seed + 1})" if s.heldout_cases else ")"))
    result = run_synth_stage(s, ctx.layout.folder("synth"), echo=ctx.echo)
    ctx.echo(f"{result.count} records -> {result.records}" + (f"; {result.heldout_count} held-out MCQ -> {result.heldout}"
                                                              if result.heldout else ""))
    return result


def _inputs(ctx: Context) -> dict[str, Path | str]:
    return {"kb_dir": Path(ctx.cfg.synth.kb_dir)} if ctx.cfg.synth.kb_dir else {}


def _preflight(cfg: RunConfig) -> list[ConfigProblem]:
    if cfg.synth.kb_dir and not Path(cfg.synth.kb_dir).is_dir():
        return [ConfigProblem("synth.kb_dir", f"{cfg.synth.kb_dir}: no such folder", "give a folder of <specialty>/<condition>.yaml")]
    return []


register(Stage("synth", SynthOutput, reads=("synth",), run=_run, inputs=_inputs, preflight=_preflight))
