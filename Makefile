# One script per chore, the same locally and in CI.
VENV := .venv/bin
KEEP ?= 0

.PHONY: bootstrap demo test check bench clean

bootstrap:
	@scripts/bootstrap

demo: bootstrap
	@$(VENV)/kcity demo $(if $(filter 1,$(KEEP)),--keep,)

test: bootstrap
	@$(VENV)/pytest

check: bootstrap
	@$(VENV)/ruff check .
	@$(VENV)/ruff format --check .
	@$(VENV)/mypy
	@$(VENV)/lint-imports
	@$(VENV)/python scripts/check-grafana-schema

bench: bootstrap
	@$(VENV)/python bench/ingest.py
	@$(VENV)/python bench/analytics.py
	@$(VENV)/python bench/api_storm.py

clean:
	@$(VENV)/kcity down || true
	rm -rf .kcity reports dashboards/build .cache
