from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import Section


class DataSource(Section):
    """One input of the data stage; in YAML either a mapping or just its path."""

    path: str = Field(description="A source file (JSON, JSONL, CSV, Parquet, .gz), a folder written by `medtune synth` or "
                      "`medtune data import|split|mix`, or a Hugging Face dataset `hf:ID[:CONFIG][@SPLIT][#REVISION]`.")
    format: str = Field("auto", description="Importer that reads it (medqa, medmcqa, pubmedqa, mmlu, medical_o1, reasonmed, "
                        "reasoning, messages, medtune); auto detects it from the fields.")
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Importer options, e.g. {ids_file: test_ground_truth.json} for pubmedqa.")
    weight: float | None = Field(None, ge=0, description="Mix weight: alone it scales the source (0.5 keeps half, 2 repeats "
                                 "it); with data.mix_total the weights are shares of the total.")
    cap: int | None = Field(None, ge=0, description="Mix cap: at most this many records of this source.")

    @model_validator(mode="before")
    @classmethod
    def _path_alone(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    @property
    def mixes(self) -> bool:
        return self.weight is not None or self.cap is not None


class DataSection(Section):

    sources: list[DataSource] = Field(
        default_factory=list, description="What the data stage of `medtune run` (and `medtune data import -c`) imports into "
        "RUN/data/records.jsonl: one source is imported as is; several, or weights/caps, are imported one by one and mixed.")
    mix_total: int | None = Field(None, ge=1, description="Total records of the mix; the sources' weights become shares of it.")
    dedupe: bool = Field(False, description="Remove exact and near duplicates while importing each source (clusters in dedupe.json).")
    dedupe_threshold: float = Field(0.8, gt=0.0, le=1.0, description="MinHash Jaccard similarity from which two records are near duplicates.")
    contamination: Literal["drop", "refuse", "off"] = Field(
        "drop", description="The data stage's check of the imported records against the benchmarks (the packaged dev "
        "vignettes, eval.benchmarks, and the public benchmarks found under eval.data_root): drop = leave the "
        "overlapping records out, with the report in RUN/data/contamination.json and the stage manifest; refuse = "
        "stop before training; off = no check.")
    train_files: list[str] = Field(
        default_factory=list, description="What `medtune train` reads as it is: records files (any importer's format), "
        "folders written by `medtune synth` or `medtune data import|split|mix` (their manifest names the records), or "
        "Hugging Face datasets hf:ID[:CONFIG][@SPLIT]. `medtune run` trains on the data stage's output instead."
    )
    val_files: list[str] = Field(default_factory=list, description="Validation records; empty = split from train.")
    format: str = Field("auto", description="Importer name for non-medtune train_files (`auto` detects it).")
    val_fraction: float = Field(0.05, ge=0.0, lt=1.0, description="Share of train held out for eval loss when val_files is empty.")
    split_seed: int = Field(0, description="Seed of the content hash that draws the validation split and which items a capped "
                            "mix keeps (the same as `medtune data split --seed`).")
    max_records: int | None = Field(None, ge=1, description="Use only the first N records (e.g. MediMind's first 500).")
    system_prompt: str | None = Field(None, description="System prompt added to every rendered conversation.")
    loss_on: Literal["reasoning_answer", "answer_only"] = Field(
        "reasoning_answer", description="Which assistant tokens carry loss: reasoning + final answer, or the final answer only."
    )
    max_length: int = Field(512, ge=16, description="Maximum tokens per rendered sample (SFT: see data.truncation; DPO/ORPO "
                            "keep a pair's start, and leave out a pair whose answers first differ past it).")
    truncation: Literal["shorten_reasoning", "drop"] = Field(
        "shorten_reasoning",
        description="Over-long samples: cut the middle of the reasoning (the answer is never cut), or drop them.",
    )

    @field_validator("contamination", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false
