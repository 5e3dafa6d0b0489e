"""K-quants (Q4_K_M, Q5_K_M, ...) through llama.cpp's own quantizer, via llama-cpp-python.

The ``gguf`` package can write F16/BF16/Q8_0 itself, but it has no K-quant
encoder; llama.cpp's ``llama_model_quantize`` is the reference implementation
(mixed per-tensor types for the _M variants, fallbacks for rows that are not a
multiple of 256). It is compiled into the llama-cpp-python wheel, so no
``llama-quantize`` binary or llama.cpp checkout is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from .common import ExportError, require_llama_cpp

# our names -> llama_ftype constant names in llama_cpp
LLAMA_FTYPES = {
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q4_k_s": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "q5_k_s": "LLAMA_FTYPE_MOSTLY_Q5_K_S",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
}
NATIVE = ("f32", "f16", "bf16", "q8_0")  # written directly by medtune.export.gguf
ALL_QUANTS = NATIVE + tuple(LLAMA_FTYPES)


def normalize_quants(quants: list[str] | str) -> list[str]:
    """Lower-case, de-duplicate, validate: 'F16, q8_0,Q4_K_M' -> ['f16', 'q8_0', 'q4_k_m'].

    >>> normalize_quants("F16, q8_0,Q4_K_M")
    ['f16', 'q8_0', 'q4_k_m']
    """
    items = quants.split(",") if isinstance(quants, str) else list(quants)
    out: list[str] = []
    for q in (s.strip().lower() for s in items):
        if not q:
            continue
        if q not in ALL_QUANTS:
            raise ExportError(f"unknown GGUF type {q!r}; choose from {', '.join(ALL_QUANTS)}")
        if q not in out:
            out.append(q)
    if not out:
        raise ExportError("no GGUF type given; e.g. --gguf f16,q8_0")
    return out


def needs_llama_cpp(quant: str) -> bool:
    return quant in LLAMA_FTYPES


def quantize_gguf(src: str | Path, dst: str | Path, quant: str, threads: int | None = None,
                  verbose: bool = False) -> Path:
    """Quantize an F16/F32 GGUF to a K-quant with llama.cpp; written atomically to ``dst``.

    llama.cpp prints one line per tensor (and a fallback warning per tensor whose rows are
    not a multiple of 256, e.g. all of SmolLM2's 576-wide ones); hidden unless ``verbose``.
    """
    llama_cpp = require_llama_cpp()
    if quant not in LLAMA_FTYPES:
        raise ExportError(f"{quant!r} is not a llama.cpp quant type here; choose from {', '.join(LLAMA_FTYPES)}")
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise ExportError(f"{src}: no such GGUF file to quantize")
    tmp = dst.with_name(f".{dst.name}.partial")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, LLAMA_FTYPES[quant])
    params.nthread = threads or max(1, min(4, os.cpu_count() or 1))
    try:
        from llama_cpp._utils import suppress_stdout_stderr

        with suppress_stdout_stderr(disable=verbose):
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
        if rc != 0:
            raise ExportError(f"{src}: llama.cpp quantization to {quant} failed (return code {rc})")
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst
