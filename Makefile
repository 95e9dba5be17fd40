# Partner Hub: the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PH := $(BIN)/partner-hub
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install lint types pytest bench schema clean

# Test processes (pytest-xdist): each has its own databases (PostgreSQL names carry the pid).
TEST_WORKERS ?= 2

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	@touch $@

install: $(VENV)/.installed

run: install
	$(PH) migrate
	$(PH) seed --demo
	@echo
	@echo "Demo admins (password-less; issue a bearer token for one of them):"
	@echo "  full@acme.example      FULL_ADMIN        full@globex.example"
	@echo "  partner@acme.example   PARTNER_ADMIN     partner@globex.example"
	@echo "  readonly@acme.example  READ_ONLY_ADMIN   readonly@globex.example"
	@echo "  sales@acme.example     SALES_ADMIN       sales@globex.example"
	@echo "Get a token:   TOKEN=\$$($(PH) token issue full@acme.example | tail -1)"
	@echo "First query:   curl -s http://$(HOST):$(PORT)/graphql -H \"Authorization: Bearer \$$TOKEN\" \\"
	@echo "                 -H 'Content-Type: application/json' -d '{\"query\":\"{ viewer { email role } }\"}'"
	@# The token rides in the URL fragment: the browser keeps it, never sends it to the server.
	@TOKEN=$$($(PH) token issue full@acme.example --label "make run GraphiQL" | tail -1) \
	  && test -n "$$TOKEN" \
	  && echo "GraphiQL, signed in as full@acme.example (open in a browser; paste another token in its bar):" \
	  && echo "  http://$(HOST):$(PORT)/graphql#token=$$TOKEN"
	@echo
	$(PH) serve --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: install
	$(BIN)/mypy graph db

pytest: install
	@$(BIN)/python -c 'import asyncio, sys; from tests.databases import postgres_unreachable_reason as r; m = asyncio.run(r()); print("PostgreSQL leg: " + ("SKIPPED, " + m if m else "enabled"), file=sys.stderr)'
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

test: lint types pytest

schema: install
	$(PH) export-schema > schema.graphql

bench: install
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) partner_hub.db partner_hub.db-wal partner_hub.db-shm
