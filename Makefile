# Two commands matter: `make run` and `make test`. Both set up .venv on their own.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= config.yaml

.PHONY: run test test-cluster lint bench bench-peers bench-cluster clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Reinstall only when setup.py changes; the package is installed editable.
$(STAMP): setup.py | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m daemon --config $(CONFIG)

# Three test files at a time (a file's tests stay together, in order, sharing its
# module daemon): the suite mostly waits on crawls and daemons, so 2 cores keep up.
test: $(STAMP)
	$(PY) -m pytest -q -n 3 --dist loadfile tests

# The cluster scenarios again with the daemon and Redis in one network namespace and each
# worker in its own, on a private /24 the root namespace routes as unreachable meanwhile
# (tests/netns_support.py). Needs root and iproute2; `make test` leaves these out.
test-cluster: $(STAMP)
	$(PY) -m pytest -q -m cluster_netns tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench

bench-peers: $(STAMP)
	$(PY) -m bench.peers

# executor: celery on this machine: dispatch latency, jobs/min with 1-3 workers, failover.
bench-cluster: $(STAMP)
	$(PY) -m bench.cluster

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
