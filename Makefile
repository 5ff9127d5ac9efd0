# One entry point for newcomers: `make run` opens the chat, `make test` runs the suite.
# Both bootstrap .venv on first use; torch goes in first so pip takes the local CPU wheel.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ladder-installed
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1

.PHONY: setup run test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar off "torch==2.13.0"
	$(PY) -m pip install --progress-bar off -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/ladder chat

test: setup
	$(OFFLINE) $(PY) -m pytest -q

bench: setup
	@for script in benchmarks/*_bench.py benchmarks/train_throughput.py benchmarks/slack_ack.py; do \
		echo "== $$script" >&2; \
		$(OFFLINE) $(PY) $$script --json || exit 1; \
	done

clean:
	rm -rf $(VENV) .pytest_cache
