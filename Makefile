# PersonaWeb: `make run` serves the app, `make test` runs the whole suite.
# Both work on a fresh clone: they create .venv and install what is missing.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test check install lint bench chromium screenshot clean

# The embedded model's llama.cpp is compiled from source (PyPI has no CPU wheels for it). Left to
# itself, llama.cpp compiles for the build host's CPU (-march=native): on a Xeon with AMX that
# binary executes AMX instructions, which fault under some hypervisors and on any other CPU.
# So the build is portable and says so:
# - GGML_NATIVE=OFF: never -march=native, whatever CPU builds it;
# - on x86-64 with AVX2 (every x86-64 CPU since 2013-2015): the x86-64-v3 set, AVX, AVX2, FMA,
#   F16C, BMI2; AVX-512, AVX-VNNI and AMX off, as they are not on every such CPU (or VM);
# - on x86-64 without AVX2: SSE 4.2 only, slow but it runs;
# - elsewhere (aarch64 ...): llama.cpp's generic non-native build for that architecture;
# - no multimodal library (LLAVA_BUILD=OFF): PersonaWeb never loads it, and it halves the build.
# --no-cache-dir: pip keys its wheel cache by version, not by these flags, so a wheel built
# elsewhere with other flags must never be reused, nor this one be cached for another machine.
# LLAMA_CMAKE_ARGS overrides all of it (e.g. for a GPU build).
ARCH := $(shell uname -m)
HOST_AVX2 := $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && echo yes)
LLAMA_PORTABLE := -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF \
	-DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF \
	-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
ifeq ($(ARCH),x86_64)
ifeq ($(HOST_AVX2),yes)
LLAMA_ISA := -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
else
LLAMA_ISA := -DGGML_SSE42=ON -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_BMI2=OFF
endif
endif
LLAMA_CMAKE_ARGS ?= $(LLAMA_PORTABLE) $(LLAMA_ISA)
# The pinned requirement, read from pyproject.toml so the version has one owner.
LLAMA_CPP_PYTHON := $(shell grep -o 'llama-cpp-python\[server\]==[0-9.]*' pyproject.toml)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# llama-cpp-python for the embedded model: about 4 minutes the first time on 2 cores.
	@echo "building llama.cpp with: $(LLAMA_CMAKE_ARGS)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" FORCE_CMAKE=1 \
		$(PY) -m pip install --quiet --no-cache-dir '$(LLAMA_CPP_PYTHON)'
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

# The quick lane for everyday work: everything but the embedded-model, browser and scale-out
# tests (`make test` is the whole suite, and what CI runs), on every core (pytest-xdist).
QUICK := not embedded and not browser and not scaleout
check: $(STAMP)
	$(PY) -m ruff check personaweb tests bench
	$(PY) -m mypy personaweb
	$(PY) -m pytest -q -p no:cacheprovider -n auto -m "$(QUICK)"

# The README's picture: the browser test that shows a run mid-stream saves it to docs/ (an
# ordinary test run saves its picture to a temporary folder, so the tracked file stays put).
screenshot: $(STAMP) chromium
	PERSONAWEB_SCREENSHOT=docs/screenshot.png $(PY) -m pytest -q -p no:cacheprovider \
		tests/browser/test_debugger.py -k test_a_message_streams_through_the_hierarchy

lint: $(STAMP)
	$(PY) -m ruff check personaweb tests bench
	$(PY) -m ruff format --check personaweb tests bench
	$(PY) -m mypy personaweb

# The benchmarks print their tables, then one line per target. bench/requirements.txt holds
# what they need beyond the product (LangGraph, the peer; a WebSocket client).
bench: $(STAMP)
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) bench/bench_engine.py
	$(PY) bench/bench_debugger.py
	$(PY) bench/bench_frames.py
	$(PY) bench/bench_scaleout.py
	$(PY) bench/bench_guided.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
