# The commands of the README. `make run` and `make test` work on a fresh
# Debian machine with Python 3.11+; .ci/run adds the system services.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lock bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[proxy,dashboard,test]'
	touch $(STAMP)

run: install
	$(BIN)/nexus migrate
	@echo "proxy on :3000, dashboard on :3001; Ctrl-C stops both"
	@trap 'kill 0' INT TERM; \
	PORT=3000 $(BIN)/nexus-proxy & \
	PORT=3001 $(BIN)/nexus-dashboard & \
	wait

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Regenerate the images' hash-locked requirements after a dependency change.
lock: install
	sh docker/lock.sh

bench: install
	$(BIN)/python -m pip install --quiet -e '.[proxy,bench]'
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.storage
	$(BIN)/python -m bench.search_bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
