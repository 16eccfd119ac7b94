# Caspix: `make demo` runs the embedded default; `make test` runs the whole suite on PostgreSQL.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

DEMO_ENV := CASPIX_ENV=demo CASPIX_WEBAUTHN_ORIGINS=http://localhost:$(PORT)
TEST_ENV := CASPIX_ENV=test
# Throwaway values: `check --deploy` inspects production settings, it connects to nothing.
DEPLOY_CHECK_ENV := CASPIX_ENV=production \
	CASPIX_SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))') \
	CASPIX_ALLOWED_HOSTS=caspix.bank.example \
	CASPIX_WEBAUTHN_RP_ID=caspix.bank.example CASPIX_WEBAUTHN_ORIGINS=https://caspix.bank.example \
	DATABASE_URL=postgres://caspix@db.invalid:5432/caspix \
	CELERY_BROKER_URL=redis://redis.invalid:6379/0 \
	CASPIX_VAULT_ADDR=https://openbao.invalid:8200 \
	CASPIX_VAULT_TOKEN=deploy-check-placeholder

.PHONY: help demo test lint typecheck checks pytest screenshots bench vendor clean

help:
	@echo "make demo   run Caspix on the embedded default (SQLite, in-process Celery, local keyring) on 127.0.0.1:$(PORT)"
	@echo "make test   lint, type-check, migration and deploy checks, then the whole suite on PostgreSQL"
	@echo "make bench  run the benchmarks under bench/ (prints one JSON line per figure)"
	@echo "make vendor refresh the vendored front-end assets from their npm packages"

$(VENV)/.installed-runtime: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed-runtime
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

demo: $(VENV)/.installed-runtime
	$(DEMO_ENV) $(PY) manage.py migrate --noinput --verbosity 0
	$(DEMO_ENV) $(PY) manage.py seed_demo
	$(DEMO_ENV) $(PY) manage.py seed_demo_cases
	@echo "Caspix (demo) on http://localhost:$(PORT)/ (passkeys need the name localhost) — Ctrl-C stops it"
	$(DEMO_ENV) exec $(VENV)/bin/gunicorn caspix.wsgi:application --config deploy/gunicorn.conf.py \
		--bind 127.0.0.1:$(PORT) --workers 2

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(TEST_ENV) $(VENV)/bin/mypy .

checks: $(VENV)/.installed-dev
	$(TEST_ENV) $(PY) manage.py makemigrations --check --dry-run
	$(DEPLOY_CHECK_ENV) $(PY) manage.py check --deploy --fail-level WARNING

# The test OIDC provider's packages (npm oidc-provider), reinstalled only when its lock changes.
OIDC_PROVIDER := tests/oidc_provider
$(OIDC_PROVIDER)/node_modules/.installed: $(OIDC_PROVIDER)/package.json $(OIDC_PROVIDER)/package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --prefix $(OIDC_PROVIDER)
	@touch $@

# The root npm packages: the vendored front-end assets' sources, and axe-core, which the browser
# tests run in each page they check for accessibility.
node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

pytest: $(VENV)/.installed-dev $(OIDC_PROVIDER)/node_modules/.installed node_modules/.installed
	$(TEST_ENV) $(PY) -m pytest -n 2 --dist loadgroup --cov --cov-report=term $(PYTEST_ARGS)

test: $(VENV)/.installed-dev
	$(PY) scripts/preflight.py
	$(MAKE) --no-print-directory lint typecheck checks pytest

# The screenshots of docs/ (queue, case, report, dashboard, access review, export pages), taken by
# the browser tests.
screenshots: $(VENV)/.installed-dev node_modules/.installed
	CASPIX_SCREENSHOTS=docs/screenshots $(TEST_ENV) $(PY) -m pytest -q -p no:randomly tests/browser/test_workspace.py \
		tests/browser/test_reports.py tests/browser/test_dashboard.py tests/browser/test_access_review.py \
		tests/browser/test_exports.py

bench: $(VENV)/.installed-dev
	$(PY) scripts/preflight.py --bench
	$(TEST_ENV) $(PY) -m bench $(BENCH)

# Chart.js: the UMD build with the source map it names (collectstatic's manifest resolves it), and
# the licences of Chart.js and of @kurkle/color, which that build bundles.
# DejaVu Sans (regular and bold) with its licence: the access-review PDF's Unicode font, read at run time.
vendor: node_modules/.installed
	cp node_modules/htmx.org/dist/htmx.min.js node_modules/htmx.org/LICENSE static/vendor/htmx/
	mkdir -p static/vendor/chartjs
	cp node_modules/chart.js/dist/chart.umd.min.js node_modules/chart.js/dist/chart.umd.min.js.map static/vendor/chartjs/
	cp node_modules/chart.js/LICENSE.md static/vendor/chartjs/LICENSE.md
	cp node_modules/@kurkle/color/LICENSE.md static/vendor/chartjs/LICENSE-kurkle-color.md
	mkdir -p static/vendor/dejavu
	cp node_modules/dejavu-fonts-ttf/ttf/DejaVuSans.ttf node_modules/dejavu-fonts-ttf/ttf/DejaVuSans-Bold.ttf node_modules/dejavu-fonts-ttf/LICENSE static/vendor/dejavu/
	$(PY) scripts/vendor_manifest.py

clean:
	rm -rf $(VENV) staticfiles .coverage .mypy_cache .ruff_cache .pytest_cache node_modules $(OIDC_PROVIDER)/node_modules
