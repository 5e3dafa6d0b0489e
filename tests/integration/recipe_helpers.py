"""Run the shipped recipes on the tiny model on a CPU: tiny inputs in each recipe's source format, and the overrides.

The one place that says what the CPU tests change in a recipe:

* ``HARDWARE_ONLY``: QLoRA / 4-bit loading, 8-bit AdamW and fp16/bf16 mixed precision need CUDA
  (bitsandbytes); on a CPU these settings, and only these, take their CPU equivalents;
* ``tiny_overrides``: the tiny model as base, a few steps, a few items, a few synthetic cases,
  the recipe's data sources replaced by tiny files in the same formats, export unverified
  (llama.cpp verification of a 3-step tiny adapter is what tests/unit/export covers); GRPO
  groups of 2 short completions; a recipe that starts from another recipe's SFT
  (``train.init_from: quickstart``) starts from that recipe with the same tiny changes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from medtune.config import RunConfig, load_config
from medtune.config.load import config_to_yaml
from medtune.pipeline.stages.train import init_recipe

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
RECIPES = sorted(p for p in CONFIGS.glob("*.yaml"))

HARDWARE_ONLY = {
    "train.method": {"qlora": "lora"},
    "model.load_in_4bit": {True: False},
    "train.optimizer": {"adamw_8bit": "adamw"},
    "train.precision": {"fp16": "auto", "bf16": "auto"},
}
# Module names of the tiny Llama; a recipe that names others (phi-2's Wqkv, fc1, fc2) adapts all linear layers instead.
TINY_MODULES = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def _get(cfg: RunConfig, path: str):
    node = cfg
    for key in path.split("."):
        node = getattr(node, key)
    return node


def cpu_overrides(cfg: RunConfig) -> list[str]:
    out = []
    for path, swap in HARDWARE_ONLY.items():
        value = _get(cfg, path)
        if value in swap:
            out.append(f"{path}={str(swap[value]).lower() if isinstance(swap[value], bool) else swap[value]}")
    return out


def write_fixtures(folder: Path) -> dict[str, Path]:
    """A few rows in each source format the recipes import (no benchmark item among them)."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = [("crushing chest pain radiating to the left arm", "Acute myocardial infarction"),
             ("a barking cough and inspiratory stridor", "Croup"),
             ("fever, neck stiffness and photophobia", "Bacterial meningitis"),
             ("sudden pleuritic chest pain after a long flight", "Pulmonary embolism")] * 3
    names = sorted({dx for _, dx in cases})

    def jsonl(name: str, rows: list) -> Path:
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        return folder / name

    out = {
        "reasonmed": jsonl("reasonmed.jsonl", [{"conversations": [
            {"role": "user", "content": f"Patient {i}: {f}. What is the diagnosis?"},
            {"role": "assistant", "content": f"<think>The key finding is {f}.</think>The diagnosis is {dx}."}]}
            for i, (f, dx) in enumerate(cases)]),
        "medqa": jsonl("medqa.jsonl", [{"question": f"Patient {i} has {f}. Diagnosis?", "options": dict(zip("ABCD", names)),
                                        "answer_idx": "ABCD"[names.index(dx)], "answer": dx} for i, (f, dx) in enumerate(cases)]),
        "medmcqa": jsonl("medmcqa.jsonl", [{"question": f"Case {i}: {f}. Most likely?", "opa": names[0], "opb": names[1],
                                            "opc": names[2], "opd": names[3], "cop": names.index(dx), "id": f"m{i}",
                                            "subject_name": "Medicine"} for i, (f, dx) in enumerate(cases)]),
    }
    o1 = [{"Question": f"A patient presents with {f}. What is it?", "Complex_CoT": f"{f} points to {dx}.",
           "Response": f"{dx}."} for f, dx in cases]
    (folder / "medical_o1_sft.json").write_text(json.dumps(o1))
    out["medical_o1"] = folder / "medical_o1_sft.json"
    pqa = {str(1000 + i): {"QUESTION": f"Does {f} suggest {dx}?", "CONTEXTS": [f"Patients with {f} were studied."],
                          "final_decision": "yes", "LONG_ANSWER": f"Yes, {f} suggests {dx}."} for i, (f, dx) in enumerate(cases)}
    (folder / "pubmedqa.json").write_text(json.dumps(pqa))
    out["pubmedqa"] = folder / "pubmedqa.json"
    return out


def tiny_overrides(cfg: RunConfig, tiny_dir: Path, fixtures: dict[str, Path], data_root: Path) -> list[str]:
    out = [f"model.base={tiny_dir}", "train.max_steps=3", "train.save_steps=2", "train.batch_size=2", "train.grad_accum=1",
           "data.max_length=1024",  # the tiny tokenizer spends ~3x the tokens of a real one on the same text
           "eval.limit=2", "eval.max_new_tokens=8", "eval.batch_size=4", f"eval.data_root={data_root}", "export.verify=false"]
    if cfg.train.eval_steps:
        out.append("train.eval_steps=2")
    if "synth" in cfg.stages:
        out += ["synth.n=6", f"synth.heldout_cases={3 if cfg.synth.heldout_cases else 0}"]
    if cfg.data.sources:
        sources = [{**s.model_dump(exclude_defaults=True), "path": str(fixtures[s.format])} for s in cfg.data.sources]
        out.append("data.sources=" + yaml.safe_dump(sources, default_flow_style=True, width=10_000).strip())
    modules = cfg.train.lora.target_modules
    if isinstance(modules, list) and not set(modules) <= TINY_MODULES:
        out.append("train.lora.target_modules=all-linear")
    if cfg.train.stage == "grpo":
        out += ["train.rl.num_generations=2", "train.rl.max_completion_length=8"]
    recipe = init_recipe(cfg.train.init_from)
    if recipe:  # a second stage starts from another recipe's SFT: that recipe runs with these same tiny changes
        sub = load_config(recipe)
        tiny = fixtures["medqa"].parent / f"tiny-{recipe.name}"
        tiny.write_text(config_to_yaml(load_config(recipe, tiny_overrides(sub, tiny_dir, fixtures, data_root))))
        out.append(f"train.init_from={tiny}")
    return out + cpu_overrides(cfg)


def launch_commands(recipe: Path) -> list[list[str]]:
    """The command lines under the header's `# Launch:` line, in groups: a comment line between commands
    (`# Or stage by stage ...`) starts another way to do the same run, to be tried in a fresh folder.
    Comments after a command (`  # ...`) are dropped."""
    header = [line[1:].strip() for line in recipe.read_text().splitlines() if line.startswith("#")]
    start = header.index("Launch:")
    groups: list[list[str]] = [[]]
    for line in header[start + 1:]:
        if line.startswith("medtune "):
            groups[-1].append(re.split(r"\s{2,}#", line)[0].strip())
        elif groups[-1]:
            groups.append([])
    return [g for g in groups if g]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}


def run_literally(command: str, extra: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a header's command as typed (`medtune` = this interpreter's `python -m medtune`) with ``extra`` appended."""
    argv = shlex.split(command)
    assert argv[0] == "medtune", command
    return subprocess.run([sys.executable, "-m", "medtune", *argv[1:], *extra], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=timeout)
