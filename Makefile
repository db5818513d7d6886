# The two quickstart commands: `make run` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=
CMD    ?= chat

.PHONY: install run test lint test-deps servers clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# `make run` talks from the terminal; `make run CMD=run` serves Slack and/or Discord.
run: install
	$(BIN)/owui-bridge $(CMD) $(ARGS)

# Open WebUI 0.6.15 and 0.12.4 go to a cache outside the repository (reused);
# Debian's chromium renders chats for the web-UI test; Debian's postgresql gives the
# storage tests a real PostgreSQL (its binaries live in /usr/lib/postgresql/N/bin).
test-deps: install
	$(BIN)/python -m tests.harness install
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q chromium chromium-driver; }
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q postgresql; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: test-deps lint
	$(BIN)/pytest $(ARGS)

# Start the model server and both Open WebUI servers once, for fast test re-runs:
#   make servers   then   OWUI_BRIDGE_TEST_SERVERS=.test-artifacts/servers.json make test
servers: test-deps
	$(BIN)/python -m tests.harness serve

clean:
	rm -rf $(VENV) .test-artifacts .mypy_cache .ruff_cache .pytest_cache
