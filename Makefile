# The course's commands. On a fresh clone, `make book` and `make test` are all a person types:
# each creates .venv on first use and installs the tested pins.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MATHJAX := build/mathjax/mathjax
LAB ?=
# nbgrader runs alembic as a subprocess: the venv's bin must be on PATH.
export PATH := $(abspath $(BIN)):$(PATH)
export PYTHONUNBUFFERED := 1

.PHONY: help setup book book-archive book-class book-fast locales release lab lab-instructor grade test test-fast gpu-reports browser-deps clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

setup: $(STAMP) $(MATHJAX)/es5/tex-mml-chtml.js  ## create .venv with the tested pins (once)

$(STAMP): pyproject.toml requirements/pins.txt requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -r requirements/pins.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@# rfc3987-syntax is an optional import of jsonschema that costs ~2.6 s at every start of
	@# nbformat, papermill, nbgrader and the book build (see README, "Why is set-up slow?").
	-$(BIN)/python -m pip uninstall --quiet -y rfc3987-syntax
	touch $@

# MathJax 3 served with the book, so that equations are typeset without internet.
$(MATHJAX)/es5/tex-mml-chtml.js:
	rm -rf build/npm && mkdir -p build/npm $(MATHJAX)
	cd build/npm && npm install --silent --no-audit --no-fund mathjax@3.2.2
	cp -r build/npm/node_modules/mathjax/es5 $(MATHJAX)/

book: setup release  ## build the book (fails on any cell error or Sphinx warning) and the released labs
	ATTNLAB_PROGRESS=text $(BIN)/python -m attnlab.course.book_execute   # changed pages, one process per core
	ATTNLAB_PROGRESS=text $(BIN)/jupyter-book build --all -W -n --keep-going .
	@# the Korean edition, from the same executed pages (execution cache) and locales/ko: _build/html/ko/
	ATTNLAB_PROGRESS=text $(BIN)/python -m attnlab.course.editions self-study --language ko
	@echo "book: open _build/html/index.html (Korean: _build/html/ko/index.html)"

locales: $(STAMP)  ## after changing English prose: refresh the Korean catalogues (locales/ko/LC_MESSAGES), then translate what changed
	$(BIN)/python -m attnlab.course.locales update

book-archive:  ## zip the built book (build/attnlab-book.zip): unzip anywhere and open index.html from disk
	@test -f _build/html/index.html || { echo "book-archive: run make book first"; exit 1; }
	$(BIN)/python -c "from attnlab.course.editions import archive; print('book-archive:', archive('.'))"

book-class: setup release  ## build the class edition (graded answers held back) into _build/class/_build/html (Korean: .../html/ko)
	ATTNLAB_PROGRESS=text $(BIN)/python -m attnlab.course.editions class

release: $(STAMP)  ## regenerate labs/ from solutions/ with nbgrader
	$(BIN)/python -m attnlab.course.release

lab: setup  ## open the student labs in JupyterLab (Validate; no instructor tools)
	$(BIN)/python -m attnlab.course.lab_app student

lab-instructor: setup  ## JupyterLab on the whole course with nbgrader's instructor tools (formgrader, Create Assignment)
	$(BIN)/python -m attnlab.course.lab_app instructor

# Grading uses this checkout's sources whatever .venv is (a link to another checkout's venv, or one
# older than the sources is never reinstalled from here), and writes no bytecode into them.
grade:  ## autograde submitted/*/LAB: a judge process, each student's code in a sandbox (LAB=lab03_transformer)
	@test -n "$(LAB)" || { echo "usage: make grade LAB=lab03_transformer"; exit 2; }
	@test -x $(BIN)/python || $(MAKE) setup
	PYTHONPATH=$(CURDIR)/src PYTHONDONTWRITEBYTECODE=1 $(BIN)/python -m attnlab.grader.grade $(LAB)

.PHONY: similarity
similarity:  ## similarity report of LAB's answers among students and with the course's code: grades/LAB/similarity.html
	@test -n "$(LAB)" || { echo "usage: make similarity LAB=lab04_vit"; exit 2; }
	@test -x $(BIN)/python || $(MAKE) setup
	PYTHONPATH=$(CURDIR)/src PYTHONDONTWRITEBYTECODE=1 $(BIN)/python -m attnlab.grader.similarity $(LAB)

DEBIAN_TEST_PACKAGES := chromium fonts-noto-cjk

browser-deps:  ## install Debian's Chromium and a CJK font for the browser tests (needs root)
	@missing=""; command -v chromium >/dev/null || missing="chromium"; \
	  test -n "$$(fc-list ':lang=ko' 2>/dev/null)" || missing="$$missing fonts-noto-cjk"; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_TEST_PACKAGES) >/dev/null; \
	    else echo "browser-deps: install $$missing (Debian: sudo apt-get install $(DEBIAN_TEST_PACKAGES))"; exit 1; fi; fi

test: setup browser-deps  ## pass every test: unit, labs, grading, the book in a browser
	$(BIN)/python -m pytest -n 2 --durations=15

test-fast: $(STAMP)  ## unit tests of attnlab only (seconds)
	$(BIN)/python -m pytest -m "not slow and not browser" -q

gpu-reports: $(STAMP)  ## on a CUDA machine: run every solution in the full profile, write reports/gpu/<lab>.json
	$(BIN)/python -m attnlab.course.gpu_reports

clean:  ## remove build outputs (keeps .venv)
	rm -rf _build build/npm
