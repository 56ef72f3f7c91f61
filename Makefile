# The development environment: .venv, pinned by constraints.txt (torch is the local CPU wheel).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: test demo docs bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt setuptools
	$(PY) -m pip install --quiet --no-build-isolation -c constraints.txt -e ".[test,demo,train,integrations,docs]"
	touch $@

test: $(VENV)/.installed
	$(PY) -m pytest -q

demo: $(VENV)/.installed
	$(VENV)/bin/probe demo --out out

docs: $(VENV)/.installed
	$(PY) -m mkdocs build --site-dir site

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/bench_solver.py
	$(PY) benchmarks/half_precision.py
	$(PY) benchmarks/bench_attach.py
	$(PY) benchmarks/bench_corpus.py
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_corpus_default.py
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_batch.py
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_length.py
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_sweep_today.py
	$(PY) benchmarks/bench_callback.py
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_tensorboard.py
	$(PY) benchmarks/soak.py

clean:
	rm -rf $(VENV) out build site *.egg-info
