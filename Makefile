# `make run` and `make test` set everything up on first use: nothing to install by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test chat lint install clean bench bench-faq

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "iju-bot needs Python 3.11 or newer; set PYTHON=python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,dense]'
	touch $@

install: $(STAMP)

run: $(STAMP)
	CONSOLE_PLAIN_HTTP_ON_LOOPBACK=1 $(BIN)/python -m bot serve --with-worker --seed-samples

chat: $(STAMP)
	$(BIN)/python -m bot chat

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Webhook throughput, steady load, burst and memory on PostgreSQL (127.0.0.1:5432), each
# next to the SDKs' bare echo bots in the same run; about two hours on a shared 2-core
# machine (answering, not sending, takes the time: the burst alone drains for ~20 minutes).
# Needs ../shared/webhook-bench; results are described in bench/README.md.
bench: $(STAMP)
	$(BIN)/python bench/webhooks.py --mode closed --shapes 1,2,1+0a,1+1a,1+2a --dense off
	$(BIN)/python bench/webhooks.py --mode closed --shapes 1+2a --dense auto,use -n 1000
	$(BIN)/python bench/answering.py --procs 1,2 -n 3000 --dense off
	$(BIN)/python bench/answering.py --procs 2 -n 1000 --dense auto
	$(BIN)/python bench/webhooks.py --mode steady --rate 100 --seconds 20 --shapes 1+2a --dense off --channels line
	$(BIN)/python bench/webhooks.py --mode burst --burst 20000 --burst-seconds 10 --shapes 1+2a --dense off --channels line
	$(BIN)/python bench/memory.py --web
	$(BIN)/python bench/broadcast.py --line 100000 --telegram 10000 --kill-after 80

# The FAQ figures (issue 4): own labelled set with latency, and localgovFAQ when
# LOCALGOVFAQ_DIR points at a materialized copy (bench/README.md says how; never committed).
bench-faq: $(STAMP)
	$(BIN)/python bench/faq_eval.py --latency
	test -z "$(LOCALGOVFAQ_DIR)" || $(BIN)/python bench/localgovfaq.py $(LOCALGOVFAQ_DIR) --cache var/bench-cache/localgovfaq --dense auto

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
