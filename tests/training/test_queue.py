"""The training queue on the tiny model: a job end to end, cancel, resume after a killed worker,
refusals before queueing, and the chat flow. Real peft training, real subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from trainfiles import QUICK, tickets, wait_for, write_jsonl
from typer.testing import CliRunner

from bot.chat.engine import Engine
from bot.chat.messages import Attachment, Choices, Image, Progress, Text, Turn, reply_text
from bot.cli import app
from bot.core.config import Settings
from bot.core.errors import LadderError
from bot.core.store import Store
from bot.training.jobs import Worker, enqueue, plan_job


def worker_process(home: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "worker", "--poll", "0.5"],
        env={**os.environ, "LADDER_HOME": str(home)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_end_to_end_job_trains_registers_and_changes_the_model(home, tmp_path, tiny_model_dir, monkeypatch):
    data = write_jsonl(tmp_path / "tickets.jsonl", tickets(160))
    result = CliRunner().invoke(app, [
        "train", "--project", "support", "--data", str(data), "--base-model", str(tiny_model_dir),
        "--max-steps", "30", "--eval-steps", "10", "--max-length", "128", "--learning-rate", "0.003",
        "--name", "intent-v1", "--wait", "--json",
    ])
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert job["status"] == "succeeded" and job["name"] == "intent-v1"
    metrics = job["metrics"]
    assert metrics["steps"] == 30 and len(metrics["val_loss"]) == 3
    first, last = metrics["train_loss"][0][1], metrics["final_train_loss"]
    assert last < first - 0.2, (first, last)  # the loss falls
    assert metrics["val_loss"][-1][1] < metrics["val_loss"][0][1]
    assert metrics["tokens_per_s"] > 0

    shown = json.loads(CliRunner().invoke(app, ["jobs", "show", str(job["id"]), "--json"]).stdout)
    assert shown["status"] == "succeeded" and {"train_loss", "val_loss"} <= set(shown["metrics"])
    assert shown["progress"]["step"] == 30
    adapters = json.loads(CliRunner().invoke(app, ["adapters", "list", "--project", "support", "--json"]).stdout)["adapters"]
    assert [a["name"] for a in adapters] == ["intent-v1"]
    adapter = adapters[0]
    folder = Path(adapter["path"]).parent
    assert (folder / "loss.png").stat().st_size > 1000
    saved = json.loads((folder / "ladder.json").read_text())
    assert saved["config"]["lora_r"] == 16 and saved["config"]["lora_alpha"] == 32 and saved["config"]["lora_dropout"] == 0.0
    assert saved["dataset"]["sha256"] and saved["base_model"]["revision"].startswith("local:")
    assert not (folder / "checkpoints").exists()  # the best model is saved; checkpoints are cleared

    # The adapter changes the model: it now prefers the trained answers over the base.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    record = tickets(160)[0]
    prompt = [{"role": "user", "content": record["instruction"] + "\n\n" + record["input"]}]
    full = prompt + [{"role": "assistant", "content": record["output"]}]
    enc = tokenizer.apply_chat_template(full, return_tensors="pt", return_dict=True, return_assistant_tokens_mask=True)
    labels = enc["input_ids"].clone()
    labels[enc["assistant_masks"] == 0] = -100
    with torch.no_grad():
        base_loss = base(input_ids=enc["input_ids"], labels=labels).loss.item()
        tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter["path"])
        tuned_loss = tuned(input_ids=enc["input_ids"], labels=labels).loss.item()
    assert tuned_loss < base_loss - 0.2, (base_loss, tuned_loss)


def test_cancel_a_queued_and_a_running_job(setup, tiny_model_dir):
    settings, store, project, data = setup
    queued = enqueue(settings, store, plan_job(settings, store, project, data, str(tiny_model_dir), name="never",
                                               overrides={**QUICK, "max_steps": 5}), "ana")
    assert store.request_cancel(queued, "ana") == "cancelled"
    with pytest.raises(LadderError, match="already cancelled"):
        store.request_cancel(queued, "ana")

    long = enqueue(settings, store, plan_job(settings, store, project, data, str(tiny_model_dir), name="long",
                                             overrides={**QUICK, "max_steps": 5000, "eval_steps": 1000}), "ana")
    worker = worker_process(settings.home)
    try:
        wait_for(lambda: (store.job(long)["progress"] or {}).get("step", 0) >= 2)
        assert store.request_cancel(long, "bo") == "cancelling"
        wait_for(lambda: store.job(long)["status"] == "cancelled", timeout=60)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    assert store.adapters(project["id"]) == []
    actions = [e["action"] for e in store.audit_log(project["id"])]
    assert actions.count("job.cancel") == 2 and actions.count("job.launch") == 2


def test_a_killed_worker_job_resumes_from_its_checkpoint(setup, tiny_model_dir):
    settings, store, project, data = setup
    job_id = enqueue(settings, store, plan_job(settings, store, project, data, str(tiny_model_dir), name="resumed",
                                               overrides={**QUICK, "batch_size": 8, "max_length": 256,
                                                          "max_steps": 60, "eval_steps": 10}), "ana")
    worker = worker_process(settings.home)
    wait_for(lambda: len(store.job(job_id)["metrics"]["val_loss"]) >= 2)
    trainer_pid = None
    for line in subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1] == str(worker.pid) and "trainer.run" in parts[2]:
            trainer_pid = int(parts[0])
    os.kill(worker.pid, signal.SIGKILL)  # the worker dies mid-job; its trainer notices and exits
    worker.wait(timeout=10)
    assert trainer_pid is not None
    wait_for(lambda: not Path(f"/proc/{trainer_pid}").exists(), timeout=30)
    assert store.job(job_id)["status"] == "running"  # nobody has noticed yet

    final = Worker(settings, store).run_one(job_id)  # a new worker finds the dead one's job
    assert final["status"] == "succeeded" and final["resumes"] == 1
    assert final["progress"]["resumed_from"] >= 10
    assert final["metrics"]["steps"] == 60
    steps = [step for step, _ in final["metrics"]["train_loss"]]
    assert steps == sorted(set(steps)) and steps[-1] == 60  # one curve, no repeated steps
    assert "resuming from the last checkpoint" not in (final["error"] or "")


def test_a_job_that_will_not_fit_is_refused_with_suggestions(setup, tiny_model_dir, tmp_path):
    settings, store, project, data = setup
    big = tmp_path / "llama-70b-shaped"
    big.mkdir()
    for file in tiny_model_dir.iterdir():
        if file.name.startswith(("tokenizer", "chat_template", "special")):
            shutil.copy(file, big / file.name)
    (big / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 8192, "num_hidden_layers": 80, "intermediate_size": 28672,
        "vocab_size": 128256, "num_attention_heads": 64, "num_key_value_heads": 8,
    }))
    with pytest.raises(LadderError, match=r"this lora job needs about \d+(\.\d+)? GB but .* try --method qlora \(about"):
        plan_job(settings, store, project, data, str(big), "lora", overrides={"max_length": 1024})
    assert store.jobs(project["id"]) == []


def test_bad_inputs_are_refused_before_queueing(setup, tiny_model_dir, tmp_path):
    settings, store, project, data = setup
    small = write_jsonl(tmp_path / "small.jsonl", tickets(30))
    with pytest.raises(LadderError, match="not ready to train: only 30 usable examples"):
        plan_job(settings, store, project, small, str(tiny_model_dir))
    with pytest.raises(LadderError, match="is not a catalogue model, a local folder or in the Hugging Face cache"):
        plan_job(settings, store, project, data, "acme/not-downloaded")
    with pytest.raises(LadderError, match="training setting 'learning_rate' is invalid"):
        plan_job(settings, store, project, data, str(tiny_model_dir), overrides={"learning_rate": 5})
    enqueue(settings, store, plan_job(settings, store, project, data, str(tiny_model_dir), name="taken"), "ana")
    with pytest.raises(LadderError, match="named 'taken' already exists"):
        plan_job(settings, store, project, data, str(tiny_model_dir), name="taken")
    # a bad or taken name is refused before the dataset or the model is even looked at
    for name, problem in [("t1", "adapter name 't1' is not valid"), ("taken", "named 'taken' already exists")]:
        with pytest.raises(LadderError, match=problem):
            plan_job(settings, store, project, tmp_path / "missing.jsonl", "acme/not-downloaded", name=name)


def test_a_crashing_job_fails_cleanly_and_the_worker_moves_on(setup, tiny_model_dir):
    settings, store, project, data = setup
    job_id = enqueue(settings, store, plan_job(settings, store, project, data, str(tiny_model_dir), name="doomed",
                                               overrides={**QUICK, "max_steps": 3}), "ana")
    Path(store.job(job_id)["config"]["train_file"]).unlink()  # the stored dataset vanishes
    final = Worker(settings, store).run_one(job_id)
    assert final["status"] == "failed" and "does not exist" in final["error"]
    assert "Traceback" not in final["error"]


def test_chat_train_doctor_card_launch_and_permissions(home, tmp_path, tiny_model_dir):
    settings = Settings(_env_file=None, home=home, base_model=str(tiny_model_dir))
    store = Store(settings.db_path)
    engine = Engine(store, settings)
    engine.converse(Turn("ana", "terminal:ana", "new support"))
    data = write_jsonl(tmp_path / "tickets.jsonl", tickets(160))
    files = (Attachment("tickets.jsonl", data, data.stat().st_size),)
    started = time.perf_counter()
    [checking] = engine.handle(Turn("ana", "terminal:ana", "train steps=12 name=chat-v1 max_length=128 lr=0.003",
                                    files=files))
    assert time.perf_counter() - started < 1.0 and isinstance(checking, Progress)  # the doctor runs in the background
    engine.wait("terminal:ana")
    card = engine.take("terminal:ana")
    text = reply_text(card)
    assert "Dataset doctor: tickets.jsonl" in text and "Trainable" in text and "Training plan" in text
    launch = next(o.id for r in card if isinstance(r, Choices) for o in r.options if o.label == "Launch")

    # A Slack user who is not a trainer is told who can launch.
    [refusal] = engine.converse(Turn("bob", "slack:C1", action=launch, platform="slack"))
    assert refusal.tone == "error" and "nobody yet (set LADDER_TRAINERS)" in refusal.text

    queued = engine.converse(Turn("ana", "terminal:ana", action=launch, platform="terminal"))
    assert "Queued job 1" in reply_text(queued) and "this chat runs it" in reply_text(queued)
    replies = list(queued)

    def outcome_arrived():  # what the worker pushes through the outbox as it trains and ends
        replies.extend(engine.take("terminal:ana"))
        return any(isinstance(r, Text) and "Adapter **chat-v1** is registered" in r.text for r in replies)

    wait_for(outcome_arrived, timeout=120)
    progress = [r for r in replies if isinstance(r, Progress)]
    assert len({p.key for p in progress}) == 1 and progress[-1].done and progress[-1].current == 12
    assert "step 12/12" in progress[-1].text and "loss" in progress[-1].text
    assert any(isinstance(r, Image) and r.path.name == "loss.png" for r in replies)
    assert any(isinstance(r, Text) and "Adapter **chat-v1** is registered" in r.text for r in replies)
    assert any(isinstance(r, Choices) and r.options[0].label == "Compare it in the arena" for r in replies)
    assert [a["name"] for a in store.adapters(store.get_project("support")["id"])] == ["chat-v1"]
    listing = reply_text(engine.converse(Turn("ana", "terminal:ana", "jobs")))
    assert "chat-v1" in listing and "succeeded" in listing
    store.close()

    allowed = Settings(_env_file=None, home=home, trainers=["carol"])
    from bot.training.jobs import is_trainer

    assert is_trainer(allowed, "carol", "slack") and not is_trainer(allowed, "ana", "terminal")


def test_chat_offers_the_fix_as_a_button(home, tmp_path, tiny_model_dir):
    from bot.chat.messages import File

    settings = Settings(_env_file=None, home=home, base_model=str(tiny_model_dir))
    store = Store(settings.db_path)
    engine = Engine(store, settings)
    engine.converse(Turn("ana", "terminal:ana", "new support"))
    records = tickets(160)
    records[3]["input"] += " my card is 4111 1111 1111 1111"
    records.append({"instruction": "broken", "output": 3})
    data = write_jsonl(tmp_path / "raw.jsonl", records)
    card = engine.converse(Turn("ana", "terminal:ana", "train name=fixed-v1 max_length=128",
                              files=(Attachment("raw.jsonl", data, data.stat().st_size),)))
    assert "Not trainable yet" in reply_text(card) and "Launch" not in reply_text(card)
    fix_button = next(o.id for r in card if isinstance(r, Choices) for o in r.options if o.label == "Fix it and check again")
    data.unlink()  # the upload was a temporary file: the button works from Ladder's own copy
    replies = engine.converse(Turn("ana", "terminal:ana", action=fix_button))
    text = reply_text(replies)
    assert "Wrote a cleaned copy with 160 examples" in text and "dropped 1 unusable line(s)" in text
    [copy] = [r for r in replies if isinstance(r, File)]
    assert "4111" not in copy.path.read_text() and "[CARD]" in copy.path.read_text()
    assert "Dataset doctor: raw.fixed.jsonl" in text and "Trainable" in text and "Training plan" in text
    assert any(isinstance(r, Choices) and r.options[0].label == "Launch" for r in replies)
    store.close()


def test_a_dataset_checked_with_one_tokenizer_is_never_trained_on_another_base(setup, tiny_model_dir, tmp_path):
    from trainer.doctor import check

    settings, store, project, data = setup
    other = shutil.copytree(tiny_model_dir, tmp_path / "another-base")  # same files, another model for Ladder
    report = check(data, base_model=str(tiny_model_dir), max_length=128)
    with pytest.raises(LadderError, match="checked with the tokenizer of .* but this job trains"):
        plan_job(settings, store, project, data, str(other), overrides={"max_length": 128}, report=report)
    assert store.jobs(project["id"]) == []
    plan = plan_job(settings, store, project, data, str(tiny_model_dir), overrides={"max_length": 128}, report=report)
    assert plan.config["base_model"] == str(tiny_model_dir.resolve())
