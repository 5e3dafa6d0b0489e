from typing import Annotated, Literal

from pydantic import Field

from .base import CommaList, Section

Protocol = Literal["loglik", "cot"]


class EvalSection(Section):
    benchmarks: CommaList = Field(default_factory=list, description="Benchmark names (`medtune eval list`) or record files.")
    protocol: Protocol = Field("loglik", description="loglik = argmax choice log-likelihood; cot = generate then extract.")
    protocols: dict[str, Annotated[list[Protocol], Field(min_length=1)]] = Field(
        default_factory=dict, description="Per-benchmark protocols, overriding eval.protocol for the benchmarks named, e.g. "
        "{dev_vignettes: [loglik, cot], medqa: [loglik]} (the synth stage's held-out set is `heldout`); a benchmark "
        "scored by two protocols gives two results, named <benchmark>-<protocol>.")
    limit: int | None = Field(None, ge=1, description="Evaluate only the first N items of each benchmark.")
    max_new_tokens: int = Field(256, ge=1, description="Generation budget for cot.")
    batch_size: int = Field(16, ge=1, description="loglik: items per forward; cot: rows decoded together (items x samples, continuous batching).")
    num_samples: int = Field(1, ge=1, description="Samples per item; > 1 = self-consistency majority vote.")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy.")
    backend: Literal["transformers", "llamacpp", "openai"] = Field("transformers", description="Inference backend.")
    endpoint: str | None = Field(None, description="Base URL for the openai backend.")
    data_root: str | None = Field(None, description="Folder that benchmark declarations' file paths are relative to (the CLI also reads $MEDTUNE_DATA_ROOT).")
    permutations: int = Field(0, ge=0, description="Extra cyclic option orders per item, for option-permutation consistency (0 = off).")
    seed: int = Field(0, description="Sampling seed for cot with temperature > 0.")
    reasoning_format: Literal["auto", "think", "sections", "plain"] = Field(
        "auto", description="How reasoning is laid out in the evaluated model's answers; auto = the training run's "
        "(its manifest), else the model's (a merged folder's or medtune GGUF's recorded format, else its preset's).")
    system_prompt: str | None = Field(
        None, description="System prompt of the evaluated model's chat prompts. None = the training run's (from its "
        "manifest), none for other models; '' = explicitly none.")
    out_dir: str | None = Field(None, description="Output folder of `medtune eval run` (default: RUN_DIR/eval with -c, "
                                "else eval_out). `medtune run` always writes RUN_DIR/eval, where the model card and the "
                                "run report read it, and refuses another folder here.")
    compare_base: bool = Field(
        False, description="Also evaluate the starting point on the same items and compare: model.base, or for a second "
        "stage run (GRPO, DPO or ORPO) the run it started from; paired gain with its 95% interval and McNemar's test "
        "(greedy decoding on the transformers backend).")

    def protocols_for(self, name: str) -> list[str]:
        """The protocols benchmark ``name`` is scored by: eval.protocols' entry for it, else eval.protocol."""
        return list(dict.fromkeys(self.protocols.get(name) or [self.protocol]))

    def result_name(self, name: str, protocol: str) -> str:
        """A result's name: the benchmark's, with ``-<protocol>`` when the benchmark is scored by more than one."""
        return f"{name}-{protocol}" if len(self.protocols_for(name)) > 1 else name

    def unknown_protocol_keys(self, names: list[str]) -> list[str]:
        """eval.protocols keys that name none of the benchmarks evaluated (a typo would silently do nothing)."""
        return [k for k in self.protocols if k not in names]
