# make test: the whole suite from a fresh clone. make demo: the lab (and later the bot) to try.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the suite needs: Redis for the job queue, OpenSSH and sudo for the lab's machines,
# etcd for the control plane's store and its etcdctl (tests start private instances of each).
SYSTEM_PACKAGES ?= redis-server openssh-server openssh-client sudo etcd-server etcd-client
# Test processes: each test file runs whole in one of them (its lab and bot are started once). Three on a
# two-core machine, because much of the suite waits (Slack's rate limits, heartbeats, machines booting).
TEST_WORKERS ?= 3

.PHONY: test demo lint bench system-packages clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[lab,test]'
	touch $@

system-packages:
	@scripts/ensure-system-packages $(SYSTEM_PACKAGES)

test: system-packages $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

bench: $(VENV)/.installed
	$(PY) benchmarks/lab_throughput.py

demo: system-packages $(VENV)/.installed
	$(PY) -m lab demo

clean:
	rm -rf $(VENV) .lab .pytest_cache .ruff_cache
