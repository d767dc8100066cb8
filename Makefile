# The targets a newcomer guesses. `make test` and `sudo make lab` are the two set-up commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SCENARIO ?= all

# Keep the CDK toolchain offline and quiet.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := 1
export CDK_DISABLE_VERSION_CHECK := 1

.PHONY: venv synth lint test lab bench deploy lab-prereqs clean

venv: $(VENV)/.installed

# The venv has what the build, the tests and the lab need, and the operators' CLI (.venv/bin/swarmkeeper),
# installed editable from this checkout.
$(VENV)/.installed: requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "swarmkeeper needs Python 3.11 or newer (found: $$($(PYTHON) --version))" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The lab runs real dockerd nodes: as root, install what is missing (Debian/Ubuntu).
lab-prereqs:
	@if [ "$$(id -u)" = 0 ]; then \
		missing=""; \
		command -v dockerd >/dev/null || missing="$$missing docker.io"; \
		command -v iptables >/dev/null || missing="$$missing iptables"; \
		command -v ip >/dev/null || missing="$$missing iproute2"; \
		[ -x /bin/busybox ] || missing="$$missing busybox-static"; \
		if [ -n "$$missing" ]; then \
			echo "installing lab prerequisites:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		fi; \
	fi

synth: venv
	$(PY) app.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/shellcheck infra/documents/*.sh .ci/run $$(find lab/images/srv -type f | sort)

test: venv node_modules/.installed lab-prereqs
	$(PY) -m pytest

lab: venv lab-prereqs synth
	$(PY) -m lab --scenario $(SCENARIO)

bench: venv lab-prereqs synth
	$(PY) -m bench

deploy: venv node_modules/.installed
	npx --no-install cdk deploy --no-notices $(CDK_ARGS)

clean:
	rm -rf cdk.out .pytest_cache .ruff_cache .mypy_cache
