# Every target bootstraps what it needs (virtualenv, MariaDB) first.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
ENV := set -a && source .sluice/mysql.env && set +a

.PHONY: demo test lint format build validate bench bootstrap clean

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	@$(ENV) && $(BIN)/sluice demo

# pytest exits 5 when it ran no test: that is a failure here, never a green run.
test: bootstrap
	@scripts/ensure-spark.sh
	@$(ENV) && $(BIN)/pytest -q; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest ran no test" >&2; exit 1; fi; exit $$rc

# The fault-injection suite alone (make test runs it too), with its table: faults injected,
# rows lost, rows duplicated per case, and the 100k-row soak's figures.
.PHONY: faults
faults: bootstrap
	@$(ENV) && $(BIN)/pytest tests/faults -q -s

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: bootstrap
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

validate: bootstrap
	SAM_CLI_TELEMETRY=0 $(BIN)/sam validate --lint

build: validate
	SAM_CLI_TELEMETRY=0 PATH=$(abspath $(BIN)):$$PATH $(BIN)/sam build --cached

# Speed is measured in bench/, never asserted in tests (bench/README.md). Pass options with
# BENCH_ARGS, e.g. make bench BENCH_ARGS='--rows 100000'.
bench: bootstrap
	@$(ENV) && SLUICE_BENCH_COMMAND="make bench$(if $(BENCH_ARGS), BENCH_ARGS='$(BENCH_ARGS)')" \
	  $(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf .aws-sam .pytest_cache .ruff_cache

# checkov on template.yaml, from its own virtualenv (.venv-tools; see scripts/checkov.sh).
.PHONY: checkov
checkov:
	@scripts/checkov.sh

# The bulk path's Glue job files (glue/job.py, the sluice library as a zip, the MariaDB JDBC
# driver) to s3://BUCKET/glue/ of a deployed stack; sam deploy does not ship Glue scripts.
# make glue-package STACK=sluice [REGION=eu-west-1]; GLUE_ARGS='--out dist/glue' builds only.
.PHONY: glue-package
glue-package: bootstrap
	@scripts/ensure-spark.sh
	$(BIN)/python glue/package.py $(if $(STACK),--stack $(STACK)) $(if $(REGION),--region $(REGION)) $(GLUE_ARGS)
