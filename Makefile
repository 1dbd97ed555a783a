# The two quick-start commands: `make demo` and `make test`. Both set everything up first.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit bench clean system-deps

$(STAMP): pyproject.toml scripts/bootstrap
	@scripts/bootstrap $(VENV)
	@touch $@

system-deps:
	@scripts/system-deps

demo: $(STAMP)
	$(BIN)/slotwise demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy -p slotwise

unit: $(STAMP) system-deps
	$(BIN)/pytest -m "not benchmark"

test: lint typecheck unit

bench: $(STAMP) system-deps
	$(BIN)/pytest -m benchmark tests/benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
