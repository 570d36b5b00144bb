# Two entry points for a fresh machine: `make demo` and `make test` (see README.md); `make docs`
# builds the documentation site.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench docs install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is installed first, pinned by constraints.txt, so that pip never resolves an open range
# to a CUDA build; the package then installs against the torch already present.
$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch
	$(PY) -m pip install --quiet -c constraints.txt -e ".[measure,ray,lightning,test,docs]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/audioprune demo

test: $(STAMP)
	$(PY) -m pytest -q

# The documentation site (mkdocs.yml): the reference pages regenerated from the code, then a
# strict build into site/ (a broken link, anchor, snippet or API reference fails).
docs: $(STAMP)
	$(PY) docs/gen_reference.py
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

bench: $(STAMP)
	$(PY) bench/run_quick.py

clean:
	rm -rf $(VENV) build site *.egg-info src/*.egg-info
