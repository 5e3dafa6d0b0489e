"""PHI recall and clinical retention per type on medtune's synthetic notes (the docs/security.md table).

    .venv/bin/python bench/phi_table.py                       # print the tables
    .venv/bin/python bench/phi_table.py --write docs/security.md   # replace the table in the docs
    .venv/bin/python bench/phi_table.py --presidio            # with Presidio's recognizers (if installed)

Same scoring as tests/unit/security/test_phi_recall.py: an identifier counts as found only when
every character of it is redacted; a clinical item counts as kept when no redaction touches it.
Without --write it also prints notes per second (meaningful only on a quiet machine).
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from medtune.security.phi.detector import PhiDetector
from medtune.security.phi.measure import markdown_table, score
from medtune.security.phi.synthetic import generate_phi_set

START, END = "<!-- phi-table:start -->", "<!-- phi-table:end -->"


def tables(presidio: bool, seed: int, with_rate: bool = True) -> str:
    detector = PhiDetector(use_presidio=presidio)
    out = [f"Recognizers: medtune's own{' + Presidio pattern recognizers' if detector.presidio else ''}; "
           f"command: `python bench/phi_table.py{' --presidio' if presidio else ''}`.", ""]
    for heldout, title in ((False, "Main set (templates the recognizers were developed on)"),
                           (True, "Held-out set (phrasings written apart from the main templates)")):
        notes = generate_phi_set(min_per_type=50, seed=seed, heldout=heldout)
        t0 = time.perf_counter()
        sc = score(detector, notes)
        seconds = time.perf_counter() - t0
        out += [f"**{title}**", "", markdown_table(sc, len(notes)).replace("seed 0", f"seed {seed}")]
        if with_rate:  # timing belongs to a quiet machine, not to the docs table
            out += [f"{len(notes) / seconds:.0f} notes/s on this machine.", ""]
        failures = sc.failures()
        out.append("All bars met." if not failures else "Below the bar: " + "; ".join(failures))
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presidio", action="store_true", help="add Presidio's pattern recognizers (when installed)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", type=Path, help="replace the block between the phi-table markers in this file")
    args = ap.parse_args()
    text = tables(args.presidio, args.seed, with_rate=args.write is None)
    print(text)
    if args.write:
        doc = args.write.read_text(encoding="utf-8")
        if START not in doc or END not in doc:
            raise SystemExit(f"{args.write}: no {START} ... {END} markers")
        new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: f"{START}\n{text}\n{END}", doc, flags=re.S)
        args.write.write_text(new, encoding="utf-8")
        print(f"wrote the table into {args.write}")


if __name__ == "__main__":
    main()
