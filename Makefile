# The study's entry points. `make study` regenerates figures/mini; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup study smoke paper test html paper-dry clean-runs zoo

setup:
	@bash scripts/setup.sh

study: setup        ## the whole study in the mini profile, inverting the committed zoo (trains no classifier)
	$(PY) -m inversion.reproduce --profile mini

smoke: setup        ## every notebook in seconds (the same batch the tests run)
	$(PY) -m inversion.reproduce --profile smoke

paper: setup        ## the papers' scale: needs a GPU, ImageNet weights and images
	$(PY) -m inversion.reproduce --profile paper

zoo: setup          ## (re)train the committed mini zoo into data/zoo/mini (ONLY=name1,name2 for some)
	$(PY) -m inversion.models.train_zoo --profile mini $(if $(ONLY),--only $(ONLY))

test: setup         ## unit tests + the smoke profile of every notebook
	$(PY) -m pytest

PROFILE ?= mini
html: setup         ## the executed notebooks of a profile (default mini) as self-contained HTML in data/html/
	$(PY) -m inversion.reproduce --profile $(PROFILE) --html

DEVICE ?= cpu
paper-dry: setup    ## the paper profile's models, sizes and code paths with tiny step counts (DEVICE=cuda for a GPU)
	$(PY) scripts/paper_dry.py --device $(DEVICE)

clean-runs:
	rm -rf data/runs figures/smoke figures/paper-dry data/paper-dry
