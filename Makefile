# The two quick-start commands: `make demo` and `make test`. Both set everything up first.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit bench clean system-deps native

$(STAMP): pyproject.toml scripts/bootstrap
	@scripts/bootstrap $(VENV)
	@touch $@

system-deps:
	@scripts/system-deps

# Recompiles the request path's modules when one changed since the last build (a no-op
# otherwise; slotwise never runs a stale compiled module either way: slotwise/native.py).
native: $(STAMP)
	@$(BIN)/python scripts/build_native.py --if-stale

demo: $(STAMP) native
	$(BIN)/slotwise demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy -p slotwise

unit: $(STAMP) system-deps native
	$(BIN)/pytest -m "not benchmark"

test: lint typecheck unit

bench: $(STAMP) system-deps native
	$(BIN)/pytest -m benchmark tests/benchmarks

clean:
	rm -rf $(VENV) build *.egg-info slotwise/native-build.manifest slotwise/native_code__mypyc.*
	find dsl plugins proxy -name '*.cpython-*.so' -delete
