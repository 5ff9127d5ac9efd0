"""The dataset doctor and the formats it reads: good files, bad files, PII, duplicates, --fix."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from trainfiles import tickets, write_jsonl
from typer.testing import CliRunner

from bot.cli import app
from trainer.doctor import check, find_pii, fix, luhn_ok, scrub
from trainer.errors import LadderError
from trainer.formats import read_dataset


def test_every_format_is_normalised_to_chat(tmp_path):
    cases = {
        "alpaca.jsonl": [{"instruction": "Add", "input": "2+2", "output": "4", "system": "Be terse."}],
        "sharegpt.jsonl": [{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}],
        "chat.jsonl": [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}],
        "pc.jsonl": [{"prompt": "Capital of France?", "completion": "Paris"}],
    }
    expected = {"alpaca.jsonl": "alpaca", "sharegpt.jsonl": "sharegpt", "chat.jsonl": "chat", "pc.jsonl": "prompt_completion"}
    for name, records in cases.items():
        parsed = read_dataset(write_jsonl(tmp_path / name, records))
        assert parsed.format == expected[name] and not parsed.errors
        messages = parsed.examples[0].messages
        assert messages[-1]["role"] == "assistant" and any(m["role"] == "user" for m in messages)
    alpaca = read_dataset(tmp_path / "alpaca.jsonl").examples[0].messages
    assert alpaca == [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Add\n\n2+2"},
                      {"role": "assistant", "content": "4"}]
    csv_file = tmp_path / "qa.csv"
    csv_file.write_text('question,answer,notes\n"Where is my parcel?","Use the tracking link.",x\n')
    parsed = read_dataset(csv_file)
    assert parsed.format == "csv" and parsed.examples[0].completion == "Use the tracking link."
    csv_file.write_text("q,a\nhi,there\n")
    with pytest.raises(LadderError, match="say which CSV columns hold the prompt and the answer"):
        read_dataset(csv_file)
    assert read_dataset(csv_file, {"prompt": "q", "completion": "a"}).examples[0].completion == "there"


def test_broken_lines_are_reported_with_their_numbers(tmp_path):
    path = tmp_path / "broken.jsonl"
    lines = [json.dumps(r) for r in tickets(3)]
    lines.insert(1, '{"instruction": "oops", "output": ')  # line 2: cut off
    lines.append('["not", "an", "object"]')  # line 5
    lines.append(json.dumps({"messages": [{"role": "user", "content": "hi"}]}))  # line 6: other format
    lines.append(json.dumps({"instruction": "x", "output": 5}))  # line 7: wrong type
    path.write_text("\n".join(lines) + "\n")
    report = check(path)
    problems = {e["line"]: e["problem"] for e in report["errors"]}
    assert set(problems) == {2, 5, 6, 7}
    assert problems[2].startswith("not valid JSON")
    assert problems[5] == "not a JSON object"
    assert "does not look like alpaca" in problems[6]
    assert "string `instruction` and `output`" in problems[7]
    assert report["valid"] == 3 and report["invalid"] == 4 and report["rows"] == 7
    assert not report["verdict"]["trainable"]
    assert report["verdict"]["first_problem"].startswith("4 line(s) cannot be used, first line 2")


def test_a_file_with_no_valid_json_names_its_first_bad_line(tmp_path):
    path = tmp_path / "cut.jsonl"
    path.write_text('\n{"instruction": "x"\n{"instruction": "y"\n')
    with pytest.raises(LadderError, match=r"no line is valid JSON \(line 2: not valid JSON"):
        check(path)


def test_pii_is_found_and_luhn_decides_cards():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    text = ("Mail ana.lopez@example.org or call +44 20 7946 0958. Card 4111 1111 1111 1111, "
            "not 4111 1111 1111 1112. Key sk-abcdefghijklmnopqrstuv12 from 192.168.10.4, "
            "api_key=Zx9Qw8Er7Ty6Ui5Op4")
    found = find_pii(text)
    assert found["email"] == ["ana.lopez@example.org"]
    assert found["credit_card"] == ["4111 1111 1111 1111"]
    assert "sk-abcdefghijklmnopqrstuv12" in found["api_key"] and any("Zx9Qw8Er7Ty6Ui5Op4" in v for v in found["api_key"])
    assert found["ip_address"] == ["192.168.10.4"]
    assert found["phone"] == ["+44 20 7946 0958"]
    assert "4111 1111 1111 1112" not in " ".join(sum(found.values(), []))  # fails Luhn: not a card
    cleaned = scrub(text)
    assert "[EMAIL]" in cleaned and "[CARD]" in cleaned and "[SECRET]" in cleaned and "[IP]" in cleaned
    assert "ana.lopez" not in cleaned and "192.168" not in cleaned
    assert find_pii("Order 12345 shipped on 2024-05-01, version 1.2.3") == {}


def test_duplicates_empty_fields_labels_and_verdicts(tmp_path):
    records = tickets(150)
    records.append(dict(records[3]))  # exact duplicate of line 4
    near = dict(records[10])
    near["input"] = near["input"].replace("hi,", "hello,")  # one word changed
    records.append(near)
    records.append({"instruction": "Classify.", "input": "", "output": " "})  # empty answer
    report = check(write_jsonl(tmp_path / "d.jsonl", records))
    assert report["duplicates"]["exact"] == 1 and report["duplicates"]["exact_lines"] == [[151, 4]]
    assert report["duplicates"]["near"] == 1 and report["duplicates"]["near_lines"][0]["like"] == 11
    assert report["empty_fields"] == [{"line": 153, "field": "output"}]
    assert report["labels"]["distinct"] >= 4 and set(report["labels"]["counts"]) >= {"repair", "refund"}
    assert "empty field" in report["verdict"]["first_problem"]

    def verdict(n):
        return check(write_jsonl(tmp_path / f"n{n}.jsonl", tickets(n, seed=n)))["verdict"]

    assert verdict(99)["level"] == "refused" and not verdict(99)["trainable"]
    assert verdict(150)["level"] == "style_only" and verdict(150)["trainable"]
    assert verdict(600)["level"] == "ok"
    assert verdict(1000)["level"] == "good" and verdict(1000)["trainable"]


def test_token_lengths_with_the_base_tokenizer(tmp_path, tiny_model_dir):
    records = tickets(120)
    records[5]["input"] = "very long " * 300
    report = check(write_jsonl(tmp_path / "t.jsonl", records), base_model=str(tiny_model_dir), max_length=256)
    tokens = report["tokens"]
    assert tokens["truncated"] == 1 and tokens["max"] > 256 and 0 < tokens["p50"] < 256
    assert any("longer than 256 tokens" in w and "answers are kept" in w for w in report["verdict"]["warnings"])


def test_truncation_cuts_the_prompt_from_the_left_and_keeps_the_answer(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from trainer.recipe import encode

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    answer = "refund"
    long_prompt = [{"role": "user", "content": "preamble " + "filler words " * 200 + "the real question"},
                   {"role": "assistant", "content": answer}]
    long_answer = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "word " * 300}]
    short = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    dataset, dropped = encode([long_prompt, long_answer, short], tokenizer, max_length=64)
    assert dropped == 1 and len(dataset) == 2  # the answer that cannot fit is left out
    ids, mask = dataset[0]["input_ids"], dataset[0]["completion_mask"]
    assert len(ids) == 64
    full = tokenizer.apply_chat_template(long_prompt, tokenize=True, return_dict=True)["input_ids"]
    answer_ids = [t for t, m in zip(ids, mask) if m]
    assert ids == full[-64:] and answer_ids == full[-len(answer_ids):]  # the end of the turn survives
    assert answer in tokenizer.decode(answer_ids) and answer_ids[-1] == full[-1]
    assert "real question" in tokenizer.decode(ids) and "preamble" not in tokenizer.decode(ids)
    assert dataset[1]["input_ids"] == tokenizer.apply_chat_template(short, tokenize=True, return_dict=True)["input_ids"]

    records = tickets(120)
    records[3]["input"] = "long context " * 200
    records[9]["output"] = "a very long answer " * 200
    report = check(write_jsonl(tmp_path / "t.jsonl", records), base_model=str(tiny_model_dir), max_length=128)
    assert report["tokens"]["truncated"] == 1 and report["tokens"]["dropped"] == 1
    assert report["tokens"]["dropped_lines"] == [10] and report["usable"] == 119
    assert any("answers longer than 128 tokens (first line 10)" in w for w in report["verdict"]["warnings"])


def test_fix_scrubs_dedupes_and_splits_without_leakage(tmp_path):
    records = tickets(200)
    records[0]["input"] += " Reach me at bo@example.com"
    records.append(dict(records[7]))
    twin = dict(records[20])
    twin["output"] = "a refund for the double charge, please"  # same prompt: must stay on one side
    records.append(twin)
    source = write_jsonl(tmp_path / "raw.jsonl", records)
    result = fix(source, tmp_path / "clean.jsonl", val_fraction=0.2, seed=7)
    assert result["dropped_duplicates"] == 1 and result["kept"] == 201
    assert result["train_examples"] + result["val_examples"] == 201 and result["stratified"]
    clean = (tmp_path / "clean.jsonl").read_text()
    assert "bo@example.com" not in clean and "[EMAIL]" in clean
    train = [json.loads(line) for line in (tmp_path / "clean.train.jsonl").read_text().splitlines()]
    val = [json.loads(line) for line in (tmp_path / "clean.val.jsonl").read_text().splitlines()]
    prompts = lambda rows: {r["messages"][0]["content"] for r in rows}  # noqa: E731
    assert not prompts(train) & prompts(val)
    assert 30 <= len(val) <= 50
    val_labels = {r["messages"][-1]["content"] for r in val}
    assert len(val_labels) >= 4  # every class is represented in validation
    again = fix(source, tmp_path / "again.jsonl", val_fraction=0.2, seed=7)
    assert (tmp_path / "again.val.jsonl").read_text() == (tmp_path / "clean.val.jsonl").read_text()
    assert again["val_examples"] == result["val_examples"]
    assert check(tmp_path / "clean.train.jsonl")["verdict"]["trainable"]


def test_data_check_cli_exit_codes(tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", tickets(120))
    result = CliRunner().invoke(app, ["data", "check", str(good), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["verdict"]["trainable"]
    small = write_jsonl(tmp_path / "small.jsonl", tickets(20))
    result = CliRunner().invoke(app, ["data", "check", str(small), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["verdict"]["level"] == "refused" and "at least 100" in report["verdict"]["first_problem"]
    fixed = CliRunner().invoke(app, ["data", "check", str(good), "--fix", str(tmp_path / "out.jsonl"), "--json"])
    assert json.loads(fixed.stdout)["fix"]["kept"] == 120 and (tmp_path / "out.val.jsonl").exists()
    binary = tmp_path / "blob.jsonl"
    binary.write_bytes(b"\x00\x01\x02")
    result = CliRunner().invoke(app, ["data", "check", str(binary)])
    assert "looks binary" in str(result.exception)


def test_fix_names_its_files_and_exits_0_when_the_copy_is_trainable(tmp_path, home):
    records = tickets(150)
    records[4]["input"] += " call me on +44 20 7946 0958"
    records[9]["input"] += " or mail dara@gmail.com"
    records.append(dict(records[2]))
    source = write_jsonl(tmp_path / "raw.jsonl", records)
    plain = CliRunner().invoke(app, ["data", "check", str(source)])
    assert plain.exit_code == 1  # personal data blocks training
    out = tmp_path / "clean.jsonl"
    fixed = CliRunner().invoke(app, ["data", "check", str(source), "--fix", str(out)])
    assert fixed.exit_code == 0, fixed.output  # the copy you will train on is trainable
    for path in (out, tmp_path / "clean.train.jsonl", tmp_path / "clean.val.jsonl"):
        assert str(path) in "".join(fixed.stdout.split()) and path.exists()  # rich may wrap long paths
    assert "The cleaned copy is trainable" in fixed.stdout
    report = json.loads(CliRunner().invoke(app, ["data", "check", str(source), "--fix", str(out), "--json"]).stdout)
    assert report["fix"]["verdict"]["trainable"] and not report["verdict"]["trainable"]


def test_allow_listed_addresses_are_not_personal_data(tmp_path, home, monkeypatch):
    assert find_pii("write to help@support.acme.com", ["acme.com"]) == {}
    assert find_pii("write to ana@acme.com", ["help@acme.com"]) == {"email": ["ana@acme.com"]}
    assert find_pii("write to help@acme.com or bo@gmail.com", ["help@acme.com"]) == {"email": ["bo@gmail.com"]}
    records = tickets(150)
    for record in records[:20]:
        record["output"] += " Questions? Write to support@acme.com"
    data = write_jsonl(tmp_path / "signed.jsonl", records)
    assert CliRunner().invoke(app, ["data", "check", str(data)]).exit_code == 1
    monkeypatch.setenv("LADDER_PII_ALLOW", '["acme.com"]')
    result = CliRunner().invoke(app, ["data", "check", str(data), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["pii"] == {}


def test_data_check_without_a_tokenizer_never_imports_the_training_stack(tmp_path):
    import subprocess
    import sys

    data = write_jsonl(tmp_path / "t.jsonl", tickets(120))
    probe = ("import sys; from typer.testing import CliRunner; from bot.cli import app; "
             f"r = CliRunner().invoke(app, ['data', 'check', {str(data)!r}, '--json']); "
             "print(r.exit_code, sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120).stdout
    assert out.strip() == "0 []"


def test_a_missing_model_names_the_download_command_the_hub_client_provides():
    import shutil
    import sys

    from trainer.hub import resolve_base_model

    with pytest.raises(LadderError) as missing:
        resolve_base_model("acme/not-downloaded")
    command = re.search(r"`(\S+) download acme/not-downloaded`", missing.value.message).group(1)
    assert command in {"hf", "huggingface-cli"}
    assert shutil.which(command, path=str(Path(sys.executable).parent)) is not None  # it really is installed


def test_named_input_files_that_are_missing_or_not_utf8_say_so_and_how_to_fix(tmp_path):
    from bot.arena.heldout import load_items
    from bot.interview.decision import load_facts
    from rag.evaluation import load_eval_questions

    latin = tmp_path / "latin.jsonl"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    for load, kind, save_as in [(load_items, "eval file", "JSONL"), (load_eval_questions, "questions file", "JSONL"),
                                (load_facts, "facts file", "JSON")]:
        with pytest.raises(LadderError, match=f"{kind} .*nowhere.jsonl does not exist; check the path"):
            load(tmp_path / "nowhere.jsonl")
        with pytest.raises(LadderError, match=rf"{kind} .*latin.jsonl is not UTF-8 text \(byte 3 cannot be read\); "
                                              f"re-save it as UTF-8 {save_as}$"):
            load(latin)


def test_a_folder_or_another_unicode_encoding_where_a_file_is_expected(tmp_path):
    import codecs

    from bot.arena.heldout import load_items
    from bot.interview.decision import load_facts
    from rag.evaluation import load_eval_questions
    from trainer.formats import read_dataset

    folder = tmp_path / "folder"
    folder.mkdir()
    row = '{"question": "when do parcels ship?", "answer": "the same day", "source": "shipping.md"}\n'
    encoded = {"utf8-bom": codecs.BOM_UTF8 + row.encode(), "utf16": row.encode("utf-16"),
               "utf16be": codecs.BOM_UTF16_BE + row.encode("utf-16-be"), "utf32": row.encode("utf-32")}
    for load, kind in [(load_items, "eval file"), (load_eval_questions, "questions file")]:
        with pytest.raises(LadderError, match=f"^{kind} .*folder is a folder, not a file; give the JSONL file itself$"):
            load(folder)
        for name, data in encoded.items():  # read by their byte-order marks, like plain UTF-8
            (tmp_path / f"{name}.jsonl").write_bytes(data)
            assert len(load(tmp_path / f"{name}.jsonl")) == 1, name
    with pytest.raises(LadderError, match="^facts file .*folder is a folder, not a file; give the JSON file itself$"):
        load_facts(folder)
    with pytest.raises(LadderError, match="^dataset .*folder is a folder, not a file; give the JSONL or CSV file"):
        read_dataset(folder)
    chat = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
    (tmp_path / "train16.jsonl").write_bytes(chat.encode("utf-16"))
    assert len(read_dataset(tmp_path / "train16.jsonl").examples) == 1
    (tmp_path / "nomark.jsonl").write_bytes(chat.encode("utf-16-le"))  # no byte-order mark: named, not "binary"
    with pytest.raises(LadderError, match="looks like UTF-16 without a byte-order mark; re-save it as UTF-8"):
        read_dataset(tmp_path / "nomark.jsonl")
    (tmp_path / "bad16.jsonl").write_bytes(codecs.BOM_UTF16_LE + b"\x00\xd8")  # a lone surrogate
    with pytest.raises(LadderError, match="is marked as UTF-16 but is not valid UTF-16; re-save it as UTF-8"):
        load_items(tmp_path / "bad16.jsonl")


def test_the_cli_says_one_line_for_a_folder_given_as_a_file(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "LADDER_HOME": str(tmp_path / "home")}
    for args in (["advise", "--answers", str(tmp_path)], ["data", "check", str(tmp_path)]):
        done = subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, env=env)
        assert done.returncode == 1 and "Traceback" not in done.stderr, (args, done.stderr)
        assert done.stderr.strip().count("\n") == 0 and "is a folder, not a file" in done.stderr, (args, done.stderr)
