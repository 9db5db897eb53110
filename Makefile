# driftfit: set up, run, test. Every target creates the virtual environment first if it is missing.
#   make run    runs the whole pipeline on the embedded default data (dvc repro)
#   make run-image  the image example (animal silhouettes, EfficientNet-Lite0): dvc repro in examples/image/
#   make flow   the same pipeline as a Prefect flow (ephemeral Prefect API unless PREFECT_API_URL is set)
#   make test   runs the test suite (slow end-to-end tests included; installs chromium for the browser test)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

# No hub downloads, no telemetry: everything the default run needs is installed by `make setup`.
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup browser run run-image flow test test-fast clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	# animal-mnist's metadata asks for TensorFlow, which its data files never need: install them alone
	$(BIN)/python -m pip install --quiet --no-deps animal-mnist==0.4
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# The browser test drives Debian's chromium (with its fonts); installed once, as root or with sudo.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	    sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	    $$sudo apt-get update -qq && \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro --quiet   # one line per step that runs
	@echo
	@echo "| what                        | where                                         |"
	@echo "|-----------------------------|-----------------------------------------------|"
	@echo "| metrics (DVC metrics file)  | reports/metrics.json                          |"
	@echo "| strategy decision and why   | reports/decision.json                         |"
	@echo "| shift measurements          | reports/shift.json                            |"
	@echo "| data-quality report         | reports/validation/data_docs/index.html       |"
	@echo "| per-class reports, latency  | reports/evaluation/                           |"
	@echo "| promotion verdict           | reports/promotion.json                        |"
	@echo "| champion + MODEL_CARD.md    | models/registry/ (driftfit registry list)     |"
	@echo "| accepted batches (memory)   | data/memory/ (memory.json lists them)         |"
	@echo "| rejected batches' reports   | reports/rejected/                             |"
	@echo
	@$(BIN)/driftfit summary   # the run in one line: chosen, new score, promoted or not, why

# The image example is its own DVC project (examples/image: .dvc/, dvc.yaml, params.yaml with task.modality: image),
# so the project's `dvc status` and `dvc repro` never see its stages.
run-image: setup
	cd examples/image && PATH="$(abspath $(BIN)):$$PATH" $(abspath $(BIN))/dvc repro --quiet
	@echo
	@echo "| what                              | where (under examples/image/)              |"
	@echo "|-----------------------------------|--------------------------------------------|"
	@echo "| metrics (DVC metrics file)        | reports/metrics.json                       |"
	@echo "| strategy decision and why         | reports/decision.json                      |"
	@echo "| test images, true / predicted     | reports/evaluation/test_images.png         |"
	@echo "| per-class reports, confusion      | reports/evaluation/                        |"
	@echo "| data-quality report               | reports/validation/data_docs/index.html    |"
	@echo "| champion + MODEL_CARD.md          | models/registry/                           |"
	@echo
	@cd examples/image && $(abspath $(BIN))/driftfit summary

flow: setup
	$(BIN)/python -m flows.retrain

# Two pytest-xdist workers by default (one per core of the 2-core reference machine), a test file per worker at a
# time (a file's fixtures, e.g. its Prefect API server, are built once); TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2

test: setup browser
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q --durations=25 -n $(TEST_WORKERS) --dist loadfile

test-fast: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf data/default data/prepared data/augmented reports models/candidate
	rm -rf examples/image/data/default examples/image/data/prepared examples/image/data/augmented examples/image/reports \
	       examples/image/models/candidate
