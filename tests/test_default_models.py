"""Ladder on its default models, SmolLM2-135M-Instruct and all-MiniLM-L6-v2, as `make setup`
pulls them from the catalogue: what a user sees. Cited answers from the documents, a blind
compare of two real answers, and a default `train` that learns the sample's ticket triage,
a format task the base model cannot do. Nothing is stubbed: the real embedder, the real base model, real peft training."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from trainfiles import write_jsonl
from typer.testing import CliRunner

from bot.chat.engine import Engine
from bot.chat.messages import Attachment, Choices, Stream, Turn
from bot.cli import app
from bot.core.config import Settings
from bot.core.store import Store
from examples import TICKET
from trainer import catalogue

HANDBOOK = Path(__file__).parent / "data" / "handbook"
PLACE = "terminal:ana"


@pytest.fixture(scope="module", autouse=True)
def default_models():
    """Fail (not skip) when the defaults are missing: `make setup` pulls them, and these tests
    are the proof that Ladder answers on them."""
    for name in (catalogue.DEFAULT_BASE, catalogue.DEFAULT_EMBEDDER):
        trouble = catalogue.problem(catalogue.entry(name))
        assert trouble is None, f"{trouble} (`make setup` pulls the default models)"


@pytest.fixture(scope="module")
def handbook(tmp_path_factory):
    """A project with the test handbook ingested, on the default models, in a chat engine."""
    home = tmp_path_factory.mktemp("default-home")
    settings = Settings(_env_file=None, home=home)
    store = Store(settings.db_path)
    engine = Engine(store, settings)
    engine.converse(Turn("ana", PLACE, "new support-bot"))
    files = tuple(Attachment(p.name, p, p.stat().st_size) for p in sorted(HANDBOOK.iterdir())
                  if p.stem in {"shipping", "refunds", "vacation", "passwords", "retention", "security"})
    engine.converse(Turn("ana", PLACE, "rag add", files=files))
    yield {"home": home, "settings": settings, "store": store, "engine": engine}
    store.close()


def citations(text: str) -> list[int]:
    return [int(n) for group in re.findall(r"\[(\d+(?:\]\[\d+)*)\]", text) for n in group.split("][")]


def test_models_list_shows_both_defaults_pulled_with_their_pinned_hashes(handbook, monkeypatch):
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in json.loads(listed.stdout)["models"]}
    for name, pinned in (("smollm2-135m", "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
                         ("all-minilm-l6-v2", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db")):
        assert rows[name]["pulled"] is True and rows[name]["sha256"] == pinned and rows[name]["status"] == "pulled"
    shown = runner.invoke(app, ["models", "show", "smollm2-135m", "--json"])  # every file's sha256 checked
    assert json.loads(shown.stdout)["status"] == "pulled"
    monkeypatch.setenv("LADDER_HOME", str(handbook["home"]))
    resolved = json.loads(runner.invoke(app, ["config", "--json"]).stdout)["resolved"]
    assert resolved["base_model"]["source"] == resolved["embedder"]["source"] == "catalogue"
    assert resolved["base_model"]["path"] == str(catalogue.folder(catalogue.entry("smollm2-135m")))


def test_the_pulled_base_model_is_a_plain_folder_that_answers():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.hub import resolve_base_model

    folder, revision = resolve_base_model("smollm2-135m")
    assert revision == "catalogue:smollm2-135m@b179c9523d0e"
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert resolve_base_model("HuggingFaceTB/SmolLM2-135M-Instruct")[0] == folder  # its upstream id works too
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)


def test_ask_writes_answers_whose_citations_point_at_retrieved_passages(handbook):
    from bot.knowledge.chat import answer_question

    settings, store = handbook["settings"], handbook["store"]
    project = store.get_project("support-bot")
    questions = ["how much does express delivery cost?", "when do orders placed in the afternoon ship?",
                 "how many days of paid vacation do employees get?"]
    results = [answer_question(settings, store, project, q) for q in questions]
    for result in results:
        assert result["answer"] and result["cited"], result
        assert set(citations(result["answer"])) == set(result["cited"]) <= set(range(1, len(result["sources"]) + 1))
    assert any(not r["quoted"] for r in results), "every answer was a quote: the model wrote none that held up"
    assert "12.90" in results[0]["answer"]  # the handbook's express price, not an invented one
    nothing = answer_question(settings, store, project, "what is the CEO's favourite colour?")
    assert nothing["answer"] == "The documents don't say." and nothing["cited"] == []

    chat = handbook["engine"].converse(Turn("ana", PLACE, "ask how much does express delivery cost?"))
    (final,) = [r for r in chat if isinstance(r, Stream) and r.done]  # the streamed answer, as it ended
    assert final.text == results[0]["answer"] and "**Sources**" in final.footer and "[1] **" in final.footer


def test_rag_ask_on_the_cli_answers_the_same_way(handbook, monkeypatch):
    monkeypatch.setenv("LADDER_HOME", str(handbook["home"]))
    result = CliRunner().invoke(app, ["rag", "ask", "--project", "support-bot", "how much does express delivery cost?",
                                      "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert "12.90" in answer["answer"] and answer["cited"] and max(answer["cited"]) <= len(answer["sources"])


def test_a_blind_compare_returns_two_real_answers_and_hides_the_names(handbook):
    replies = handbook["engine"].converse(Turn("ana", PLACE, "compare what is the refund policy?"))
    answers = [r for r in replies if isinstance(r, Stream) and r.title.startswith("Answer ")]
    assert [(a.title, a.done) for a in answers] == [("Answer A", True), ("Answer B", True)]  # streamed, ended
    assert all(len(a.text.split()) >= 3 for a in answers), answers
    shown = " ".join(f"{r.title} {r.footer}" for r in answers)
    assert "base" not in shown and "rag" not in shown and " ms" not in shown  # blind until the vote
    assert not any(re.search(r"\[\d+\]", a.text) for a in answers)  # no citation says which side retrieved
    assert any(isinstance(r, Choices) for r in replies)


# -- an adapter on the real base that learns --------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The journey's LoRA rungs, smaller (benchmarks/journey.py runs them in full): a default
    `ladder train` (no base model, no recipe settings) on the first 110 of the sample's support
    tickets, `ladder eval` of base and the adapter on 12 held-out tickets against the sample's
    schema, and a blind compare of both on a new ticket."""
    from examples import SAMPLE

    home = tmp_path_factory.mktemp("train-home")
    lines = (SAMPLE / "train.jsonl").read_text(encoding="utf-8").splitlines()
    data = home / "tickets.jsonl"
    data.write_text("\n".join(lines[:110]) + "\n", encoding="utf-8")  # 100 usable at least, as the doctor asks
    heldout = home / "heldout.jsonl"
    heldout.write_text("\n".join((SAMPLE / "heldout.jsonl").read_text(encoding="utf-8").splitlines()[:12]) + "\n",
                       encoding="utf-8")
    general = write_jsonl(home / "general.jsonl", [  # a short forgetting check: the built-in one has 8
        {"prompt": "What is the capital of France?", "reference": "Paris"},
        {"prompt": "What do bees make?", "reference": "honey"}])
    env = {"LADDER_HOME": str(home)}
    runner = CliRunner()
    job = runner.invoke(app, ["train", "--project", "triage", "--data", str(data), "--name", "triage-v1",
                              "--wait", "--json"], env=env)
    assert job.exit_code == 0, job.output
    evaluated = runner.invoke(app, ["eval", "--project", "triage", "--eval-file", str(heldout), "--schema",
                                    str(SAMPLE / "triage.schema.json"), "--variants", "base,lora:triage-v1",
                                    "--general-file", str(general), "--json"], env=env)
    assert evaluated.exit_code == 0, evaluated.output
    compared = runner.invoke(app, ["compare", "--project", "triage", "--all", "--reveal", "--json", TICKET], env=env)
    assert compared.exit_code == 0, compared.output
    [adapter] = json.loads(runner.invoke(app, ["adapters", "list", "--project", "triage", "--json"],
                                         env=env).stdout)["adapters"]
    summary = json.loads((Path(adapter["path"]).parent / "ladder.json").read_text())
    return {"job": json.loads(job.stdout), "eval": json.loads(evaluated.stdout), "summary": summary,
            "compare": {a["variant"]: a["text"] for a in json.loads(compared.stdout)["answers"]}}


def test_a_default_train_runs_on_the_default_base_and_lowers_the_loss(trained):
    job, summary = trained["job"], trained["summary"]
    assert job["status"] == "succeeded" and job["base_model"] == "smollm2-135m"
    assert summary["base_model"]["revision"] == "catalogue:smollm2-135m@b179c9523d0e"
    losses = [loss for _, loss in summary["metrics"]["train_loss"]]
    assert losses[0] > 1.5 and losses[-1] < losses[0] / 5, losses
    assert summary["dataset"]["optimizer_steps"] >= 40  # enough steps to learn: no packing of short examples
    assert summary["config"]["packing"] is False


def test_the_adapter_answers_its_held_out_tickets_and_base_does_not(trained):
    scores = trained["eval"]["variants"]
    lora, base = scores["lora:triage-v1"], scores["base"]
    # Base answers prose, or JSON of its own shape; 100 tickets teach the adapter the record's
    # shape on every held-out ticket and most of its fields (the journey's 1,000 teach the rest).
    assert lora["schema_compliant"] >= 0.9 and base["schema_compliant"] <= 0.1, scores
    assert lora["field_accuracy"] > base["field_accuracy"] + 0.5, scores
    assert lora["exact_match"] > base["exact_match"], scores
    assert trained["eval"]["general_set_size"] == 2 and "lora:triage-v1" in trained["eval"]["forgetting"]
    assert Path(trained["eval"]["chart"]).is_file()
    from examples import SAMPLE

    record = json.loads(trained["compare"]["lora:triage-v1"])  # a new ticket: a record of the schema's shape
    jsonschema.validate(record, json.loads((SAMPLE / "triage.schema.json").read_text()))
    assert record["order_id"] == "LK-204518"  # copied from the ticket
    assert trained["compare"]["base"] != trained["compare"]["lora:triage-v1"]
