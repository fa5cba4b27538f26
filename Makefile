# upgd_nb: two commands do all set-up on a fresh machine (Python >= 3.10 on the PATH as python3):
#   make run    create .venv if it is missing, then execute nbs/run.ipynb with papermill on the default experiment
#   make test   create .venv if it is missing, then run the whole test suite (ends with pytest's summary line)
# Extra run parameters, papermill style: make run ARGS="-p task emnist_letters -p seed 3"
# The site (_quarto.yml): make site (check, assemble _build/, quarto render there where Quarto is installed);
#   make site-check (every page rendered with pandoc; fails on a broken link, anchor or citation, or a cell that
#   should show an output and shows none; the notebooks are shown with the outputs `make test` left in _build/executed/,
#   executed again where those are missing or stale). Without Quarto, make site leaves HTML previews in _build/_check/.
PY ?= python3
VENV := .venv
# Datasets: $UPGD_NB_DATA if set; else ../shared/data where it exists (the offline development machines); else data/.
UPGD_NB_DATA ?= $(if $(wildcard ../shared/data/MNIST),$(abspath ../shared/data),$(CURDIR)/data)
export UPGD_NB_DATA

.PHONY: run test readme site site-check
$(VENV)/.installed: constraints.txt settings.ini setup.py
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/upgd-run $(ARGS)

test: $(VENV)/.installed
	UPGD_NB_OFFLINE=1 $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests $(PYTEST_ARGS)

readme: $(VENV)/.installed
	$(VENV)/bin/python -c 'from upgd_nb.headlines import write_index; write_index()'
	$(VENV)/bin/python tests/readme.py > README.md

site: $(VENV)/.installed
	$(VENV)/bin/python -m upgd_nb.site build

site-check: $(VENV)/.installed
	$(VENV)/bin/python -m upgd_nb.site check
