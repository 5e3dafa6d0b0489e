"""Model card: YAML front matter, recipe, evaluation table with protocols, disclaimer."""

from __future__ import annotations

import json
import shutil

import yaml
from export_helpers import build_run

from medtune import DISCLAIMER
from medtune.data.records import Answer, Record
from medtune.export.card import find_eval_results, write_model_card
from medtune.export.common import Provenance, read_provenance


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def _mcq(n: int) -> list[Record]:
    names = ["Pneumonia", "Asthma", "Pulmonary embolism", "Heart failure"]
    return [Record.create(source="t", task="mcq", question=f"Case {i}: fever and dyspnea. Most likely diagnosis?",
                          options=dict(zip("ABCD", names[i % 4:] + names[:i % 4])), answer=Answer(letter="ABCD"[i % 4]))
            for i in range(n)]


def test_card_lists_this_models_evaluations_beside_its_base_and_no_other_models(tiny_run, trained_base, tmp_path,
                                                                                 caplog):
    """`medtune run` writes RUN_DIR/eval beside RUN_DIR/train; the card found nothing there (it read RUN_DIR/train/eval
    and a summary format the evaluator never wrote). Rows are matched by model identity, never by folder."""
    from medtune.eval.evaluate import compare_models

    run = tmp_path / "runs" / "train"
    shutil.copytree(tiny_run, run)
    quiet = {"batch_size": 4, "device": "cpu", "log": lambda *_: None}
    compare_models(str(trained_base), run, _mcq(6), tmp_path / "runs" / "eval" / "mcq-loglik", **quiet)
    other = build_run(trained_base, tmp_path / "other", b_std=0.05, seed=7)  # another adapter on the same base
    compare_models(str(trained_base), other, _mcq(5), tmp_path / "runs" / "eval" / "other-loglik", **quiet)
    tuned = json.loads((tmp_path / "runs" / "eval" / "mcq-loglik" / "tuned" / "summary.json").read_text())
    base = json.loads((tmp_path / "runs" / "eval" / "mcq-loglik" / "base" / "summary.json").read_text())

    rows = find_eval_results(run, tmp_path / "unused")
    assert [(r["n"], r["folder"]) for r in rows] == [(6, "eval/mcq-loglik/tuned")]  # not the other adapter's 5 items
    assert rows[0]["accuracy"] == f"{tuned['accuracy']['accuracy']:.4f}" and rows[0]["base"] == f"{base['accuracy']['accuracy']:.4f}"
    assert rows[0]["ci"] == "-".join(f"{x:.3f}" for x in tuned["accuracy"]["ci95"])
    card = write_model_card(tmp_path / "card", read_provenance(run), "medtune-tiny", rows, recipe={"train.lora.r": 4}).read_text()
    line = next(x for x in card.splitlines() if "eval/mcq-loglik/tuned" in x)
    assert line.startswith(f"| {tuned['benchmark']} | loglik (chat) | {rows[0]['accuracy']} ({rows[0]['ci']}) | 6 |"), line
    assert "- loglik: zero-shot log-likelihood" in card and "No evaluation of this model" not in card
    meta = _front_matter(card)
    assert meta["base_model"] == str(trained_base) and meta["license"] == "other"  # a local base: licence unknown
    assert "medical" in meta["tags"] and meta["datasets"] == ["train.jsonl"]
    assert "| train.lora.r | 4 |" in card and "| run id | tiny-test-1 |" in card
    for section in ("## Recipe", "## Evaluation", "## Intended use", "## Limitations", "## Disclaimer"):
        assert section in card
    assert card.count(DISCLAIMER) >= 2

    summary = tmp_path / "runs" / "eval" / "mcq-loglik" / "tuned" / "summary.json"
    summary.write_text(json.dumps({**tuned, "accuracy": {"n": 0, "correct": 0, "accuracy": None, "ci95": [0.0, 1.0]}}))
    assert find_eval_results(run, tmp_path / "unused")[0]["accuracy"] == "no scorable items"  # not 0.0, no crash
    summary.write_text(json.dumps({**tuned, "accuracy": {"n": 6, "accuracy": 0.5}}))  # no interval: not shown as 0.5
    assert find_eval_results(run, tmp_path / "unused") == []
    summary.write_text("{not json")
    assert find_eval_results(run, tmp_path / "unused") == []  # a broken summary is skipped, and nothing else claims it
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 2 and all(str(summary) in m for m in skipped)
    assert "field 'accuracy.ci95' is missing" in skipped[0] and "line 1: not valid JSON" in skipped[1]


def test_card_without_eval_says_so(tmp_path):
    card = write_model_card(tmp_path, Provenance(base_model="smollm2-135m"), "m").read_text()
    assert "No evaluation of this model was found" in card
    meta = _front_matter(card)  # a preset base is named by its Hub id, with the preset's licence
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and meta["license"] == "apache-2.0"


def test_card_states_the_pass_rule_verify_applies(tmp_path, monkeypatch):
    """The card said "Pass: F16 all prompts exact, Q8_0 agreement >= 0.90" beside an F16 file verify passed with
    1/4 prompts exact: verify judges round trips and flip margins against the tie bands, and the card now says so,
    quoting the bands from verify itself."""
    from medtune.export import verify

    gguf = tmp_path / "m-f16.gguf"
    gguf.write_bytes(b"GGUF")
    row = {"gguf": str(gguf), "type": "F16", "prompts": 4, "n_tokens": 32, "exact_prompts": 1, "agreement": 0.97,
           "max_flip_margin": verify.TIE_BANDS["F16"] / 2, "tie_band": verify.TIE_BANDS["F16"],
           "chat_template_roundtrip": True, "tokenizer_roundtrip": True, "ppl_hf": 3.0, "ppl_gguf": 3.01,
           "reference_dtype": "float32"}
    row["passed"] = verify._passed(row)
    assert row["passed"] is True  # near-ties only: a pass, although 3 of 4 prompts diverged

    def card() -> tuple[str, str]:
        lines = write_model_card(tmp_path / "card", Provenance(base_model="smollm2-135m"), "m", gguf_files=[gguf],
                                 verify_rows=[row]).read_text().splitlines()
        return next(x for x in lines if x.startswith("| `m-f16.gguf`")), next(x for x in lines if x.startswith("Verification"))

    line, protocol = card()
    assert "| 1/4 |" in line and line.endswith("| pass |")
    assert "all prompts exact" not in protocol and "agreement >=" not in protocol
    assert verify.pass_rule() in protocol and "round trips" in protocol and "K-quants are reported, not judged" in protocol
    for t, band in verify.TIE_BANDS.items():
        assert f"{t} <= {band:g}" in protocol
    assert "32 greedy tokens" in protocol and "stored in float32" in protocol
    monkeypatch.setitem(verify.TIE_BANDS, "F16", 0.0123)  # one source of truth: the card follows verify's bands
    assert "F16 <= 0.0123" in card()[1]
