# One entry point for newcomers: `make run` opens the chat, `make test` runs the suite.
# Both bootstrap .venv on first use, from requirements.lock: every package pinned with its hashes
# (torch as the local CPU wheel), so a fresh clone installs exactly what CI tested and a new
# upstream release never changes a build by itself. `make upgrade` moves the pins on purpose.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ladder-installed
BYTECODE := $(VENV)/.ladder-compiled
LOCK   := requirements.lock
TOOLS  := .venv-tools
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
# The default models (the catalogue's chat model and embedder), pulled once into LADDER_MODELS.
MODELS := smollm2-135m all-minilm-l6-v2
COMPILE := $(TOOLS)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --extra dev \
	--all-build-deps --no-emit-index-url --no-emit-find-links --output-file $(LOCK) pyproject.toml

.PHONY: setup models run test bench lock upgrade clean

$(STAMP): $(LOCK) pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar off --no-compile --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install --progress-bar off --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $(STAMP)

# Bytecode for the whole venv on every core (pip compiles one file at a time), while the models
# are pulled: every process then starts fast, even where Python may not write bytecode itself.
# (A few vendored files target other Pythons and do not compile; that is not an error here.)
$(BYTECODE): $(STAMP)
	$(PY) -m compileall -q -j 0 $(VENV)/lib > /dev/null & compiling=$$!; \
	$(VENV)/bin/ladder models pull $(MODELS); pulled=$$?; wait $$compiling; exit $$pulled
	touch $(BYTECODE)

# Fast when they are there already: a pull checks the cached copy and keeps it.
models: $(STAMP)
	$(VENV)/bin/ladder models pull $(MODELS)

setup: $(BYTECODE) models

run: setup
	$(VENV)/bin/ladder chat

test: setup
	$(OFFLINE) $(PY) -m pytest -q

# Under 15 minutes on 2 cores: training's one-technique-at-a-time ablations (4 more runs) are
# left to `benchmarks/train_throughput.py --json` run by itself.
bench: setup
	@for script in $(filter-out benchmarks/rag_bench.py,$(wildcard benchmarks/*_bench.py)) benchmarks/slack_ack.py; do \
		echo "== $$script" >&2; \
		$(OFFLINE) $(PY) $$script --json || exit 1; \
	done
	@echo "== benchmarks/rag_bench.py (20k chunks; 100k, its default, indexes for 4 minutes)" >&2
	$(OFFLINE) $(PY) benchmarks/rag_bench.py --json --chunks 20000
	@echo "== benchmarks/train_throughput.py" >&2
	$(OFFLINE) $(PY) benchmarks/train_throughput.py --json --no-ablations

$(TOOLS)/bin/pip-compile:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --progress-bar off "pip-tools==7.6.2"

# After editing pyproject.toml's dependencies: pin what is new, keep every other pin.
lock: $(TOOLS)/bin/pip-compile
	$(COMPILE)

# Move every pin to the newest release the ranges allow, reinstall, and run the tests.
upgrade: $(TOOLS)/bin/pip-compile
	$(COMPILE) --upgrade
	$(MAKE) test

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache
