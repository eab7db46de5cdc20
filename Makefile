# Two commands for a newcomer (see README.md):
#   make demo   set up, load synthetic demo data into SQLite, and serve on http://127.0.0.1:5000/
#   make test   set up everything the tests need and run the suite on SQLite and on PostgreSQL
PYTHON ?= python3
VENV ?= .venv
PIP := $(VENV)/bin/pip
PORT ?= 5000

.PHONY: demo test lint bench messages clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed-app: pyproject.toml | $(VENV)/bin/activate
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/activate
	$(PIP) install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed-app

demo: $(VENV)/.installed-app
	bash .ci/system-deps app
	$(VENV)/bin/kaptools demo --port $(PORT)

test: $(VENV)/.installed-test
	bash .ci/system-deps
	bash .ci/test

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .

bench: $(VENV)/.installed-test
	bash .ci/system-deps bench
	$(VENV)/bin/python -m tests.bench

# The product's words, for translators (see README, "Translating").
messages: $(VENV)/.installed-app
	$(VENV)/bin/pybabel extract -F kaptools/translations/babel.cfg -k _l -k lazy_gettext -k css_content \
		--project kaptools --copyright-holder "kaptools contributors" --sort-by-file \
		-o kaptools/translations/messages.pot .

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
