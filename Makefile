# Two commands (see README): `make demo` sets up and opens the app on the demo world; `make test` sets up
# and runs the tests. Everything else here is a helper for them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint fixtures bench fuzz clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[train,dev]"
	touch $(STAMP)

# The app runs on a working copy of the demo world: jobs launched from it write new adapter versions, a
# job store and registry entries, which must not land in the tracked fixtures/.
DEMO := demo-world

demo: $(STAMP)
	@test -d $(DEMO) || { mkdir -p $(DEMO) && cp -r fixtures/models fixtures/data fixtures/rollouts $(DEMO)/ && \
		echo "copied the demo world to $(DEMO)/ (jobs write there; delete it to start over)"; }
	$(BIN)/doctor tui $(DEMO)/rollouts

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -m "not slow"

# The fuzz suite's long run (tests/test_fuzz_readers.py; CI runs its bounded profile with the tests).
# DOCTOR_FUZZ_LOG records each input tried (kind + rules) for the closing note.
fuzz: $(STAMP)
	DOCTOR_FUZZ=long DOCTOR_FUZZ_LOG=fuzz-inputs.jsonl $(BIN)/python -m pytest tests/test_fuzz_readers.py -q

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

fixtures: $(STAMP)
	$(BIN)/python fixtures/build.py

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
