"""Measure the logit error each GGUF type causes, the basis of `export verify`'s tie bands.

    nice .venv/bin/python bench/export_tie_bands.py                 # tiny models + SmolLM2 (~30 min on 2 busy cores)
    nice .venv/bin/python bench/export_tie_bands.py --no-smollm2    # tiny models only (minutes)

For every architecture the converter supports (built tiny, as in tests/unit/export/
test_architectures.py), the trained tiny model with a LoRA merged in, and the embedded SmolLM2-135M,
each type (F32, F16, BF16, Q8_0) is converted and verified; the table gives, per type, the largest
`logit_err` (|z_GGUF - z_HF| / sigma on HF's top-8 tokens) divided by the type's unit roundoff,
the constant `ERROR_PER_ROUNDOFF` in medtune/export/verify.py must stay above, and the largest
flip margin seen (which must stay inside the tie band). Results: docs/export.md, "Near-ties".
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "unit" / "export")]
TYPES = ("f32", "f16", "bf16", "q8_0")


def models(work: Path, smollm2: bool) -> dict[str, Path]:
    from export_helpers import build_run, train_tiny_base
    from test_architectures import KINDS, build_tiny
    from tiny import build_tiny_model_dir

    from medtune.export import merge_run

    tiny = build_tiny_model_dir(work / "tiny")
    out = {kind: build_tiny(kind, work / kind, tiny) for kind in KINDS}
    base = train_tiny_base(tiny, work / "trained-base")
    out["trained+lora"] = merge_run(build_run(base, work / "run", b_std=0.05), work / "merged")
    if smollm2:
        from medtune.models.embedded import materialize_embedded

        out["smollm2-135m"] = materialize_embedded()
    return out


def main() -> None:
    from medtune.export import convert_hf_to_gguf
    from medtune.export.verify import ERROR_PER_ROUNDOFF, TIE_BANDS, UNIT_ROUNDOFF, verify_ggufs

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-smollm2", action="store_true", help="Skip the embedded SmolLM2 (the slow part).")
    args = ap.parse_args()
    worst: dict[str, tuple[float, str]] = {}
    margins: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in models(Path(tmp), not args.no_smollm2).items():
            files = []
            for t in TYPES:
                files.append(Path(tmp) / f"{name}-{t}.gguf")
                convert_hf_to_gguf(folder, files[-1], t)
            for r in verify_ggufs(files, folder):
                k = r["logit_err"] / UNIT_ROUNDOFF[r["type"]]
                print(f"{name:>14} {r['type']:>5}: logit_err {r['logit_err']:.4f} sigma = {k:5.1f} u; "
                      f"flips {r['flips']}, max margin {r['max_flip_margin']:.4f}, passed {r['passed']}", flush=True)
                if k > worst.get(r["type"], (0.0, ""))[0]:
                    worst[r["type"]] = (k, name)
                margins[r["type"]] = max(margins.get(r["type"], 0.0), r["max_flip_margin"])
    print("\n| type | u | largest logit_err / u (model) | ERROR_PER_ROUNDOFF | tie band (sigma) | largest flip margin |")
    print("|---|---|---|---|---|---|")
    for t in (t.upper() for t in TYPES):
        k, name = worst[t]
        ok = "" if k <= ERROR_PER_ROUNDOFF[t] else " **above the constant**"
        print(f"| {t} | {UNIT_ROUNDOFF[t]:.2e} | {k:.1f} ({name}){ok} | {ERROR_PER_ROUNDOFF[t]:g} | {TIE_BANDS[t]} | {margins[t]:.4f} |")


if __name__ == "__main__":
    main()
