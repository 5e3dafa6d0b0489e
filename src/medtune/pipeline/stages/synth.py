"""The synth stage: synthetic cases from the knowledge base -> RUN/synth/records.jsonl (+ heldout.jsonl).

``style: cases`` is `medtune synth` (full vignettes, cases.jsonl, dataset card, optional teacher);
``style: demo`` writes the short focused records of ``synth/demo.py`` that a CPU can learn from
in minutes (the quickstart). Held-out cases come from seed + 1: new patients of the same
conditions, as lettered MCQ for evaluation.
"""

from __future__ import annotations

from pathlib import Path

from ...config.load import ConfigProblem
from ...config.schema import RunConfig
from ...config.sections.synth import SynthSection
from ...utils.io import atomic_write_jsonl
from ..registry import Context, Stage, register
from ..results import SynthOutput

RECORDS, HELDOUT = "records.jsonl", "heldout.jsonl"


def _heldout(section: SynthSection, out: Path) -> tuple[Path | None, int]:
    """Lettered MCQ of ``heldout_cases`` new patients (seed + 1), in the style of the training records."""
    if not section.heldout_cases:
        (out / HELDOUT).unlink(missing_ok=True)
        return None, 0
    specialties = section.specialties or None
    if section.style == "demo":
        from ...synth.demo import demo_records

        records = demo_records(section.heldout_cases, seed=section.seed + 1, specialties=specialties, tasks=("mcq",),
                               inline_share=0.0)  # keep the options lettered: strict letter extraction scores them
    else:
        from ...synth.engine import generate_records

        records = generate_records(section.heldout_cases, section.seed + 1, specialties=specialties, tasks=["mcq"],
                                   kb_dirs=[section.kb_dir] if section.kb_dir else None, compact=section.compact)
    count = atomic_write_jsonl(out / HELDOUT, (r.model_dump(mode="json") for r in records))
    return out / HELDOUT, count


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


def run_synth_stage(section: SynthSection, out: str | Path) -> SynthOutput:
    """Run one synth section into ``out`` (what `medtune run` and `medtune synth -c` call)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if section.style == "demo":
        count = _demo(section, out)
    else:
        from ...synth import run_synth_section

        count = run_synth_section(section, out)["records"]
    heldout, n_heldout = _heldout(section, out)
    return SynthOutput(folder=out, records=out / RECORDS, count=count, heldout=heldout, heldout_count=n_heldout)


def _run(ctx: Context, resume: bool) -> SynthOutput:
    s = ctx.cfg.synth
    ctx.echo(f"{s.n} cases ({s.style}{', compact' if s.compact and s.style == 'cases' else ''}, seed {s.seed}, "
             f"tasks {','.join(s.tasks)}"
             + (f", specialties {','.join(s.specialties)}" if s.specialties else "")
             + (f"), {s.heldout_cases} held-out cases (seed {s.seed + 1})" if s.heldout_cases else ")"))
    result = run_synth_stage(s, ctx.layout.folder("synth"))
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
