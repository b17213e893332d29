# The two commands a newcomer runs: `make lab` (three-cluster lab) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: lab test lint check certs bench proto clean native

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m gateway_core.utils.native ensure
	@touch $(STAMP)

lab: $(STAMP)
	$(BIN)/gateway-lab up

# The request path is compiled with mypyc (rebuilt here when a source changed since the last
# build); GATEWAY_PURE_PYTHON=1 runs the same tests on the Python sources.
test: $(STAMP)
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

# Rebuild the compiled request path (mypyc) now.
native: $(STAMP)
	$(BIN)/python -m gateway_core.utils.native build

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	-$(BIN)/python -m gateway_core.utils.native clean
	rm -rf $(VENV) build *.egg-info
