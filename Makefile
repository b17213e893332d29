# The two commands a newcomer runs: `make lab` (three-cluster lab) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# sslyze (the Mozilla TLS profile test) pins cryptography below the project's own version, so it
# gets a virtualenv of its own; tests/gateway_core/server/test_tls_sslyze.py runs it from there.
SSLYZE_VENV ?= .venv-sslyze
SSLYZE_STAMP := $(SSLYZE_VENV)/.installed

.PHONY: lab test lint check certs bench proto screenshot clean native

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m gateway_core.utils.native ensure
	@touch $(STAMP)

$(SSLYZE_STAMP):
	@test -x $(SSLYZE_VENV)/bin/python || $(PYTHON) -m venv $(SSLYZE_VENV)
	$(SSLYZE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SSLYZE_VENV)/bin/python -m pip install --quiet 'sslyze>=6.3,<7'
	@touch $(SSLYZE_STAMP)

lab: $(STAMP)
	$(BIN)/gateway-lab up

# The request path is compiled with mypyc (rebuilt here when a source changed since the last
# build); GATEWAY_PURE_PYTHON=1 runs the same tests on the Python sources.
test: $(STAMP) $(SSLYZE_STAMP)
	$(BIN)/python -m gateway_core.utils.native ensure
	$(BIN)/python -m gateway_core.utils.preflight
	$(BIN)/python -m pytest -q; status=$$?; \
	  if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; \
	  exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict

certs: $(STAMP)
	$(BIN)/python -m certs.generate --out certs/lab

# Regenerate gateway_lab/proto's Python code from demo.proto (the command is in generate.py).
proto: $(STAMP)
	$(BIN)/python -m gateway_lab.proto.generate

# Regenerate docs/images/dashboard.png: the browser test's screenshot of the lab's Tier-1
# dashboard (make test writes it only under pytest's tmp path, so the tree stays clean).
screenshot: $(STAMP)
	UPDATE_SCREENSHOT=1 $(BIN)/python -m pytest -q -p no:cacheprovider -s \
	  tests/lab/test_dashboard_browser.py -k renders

# Rebuild the compiled request path (mypyc) now.
native: $(STAMP)
	$(BIN)/python -m gateway_core.utils.native build

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	-$(BIN)/python -m gateway_core.utils.native clean
	rm -rf $(VENV) $(SSLYZE_VENV) build *.egg-info
