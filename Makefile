# The two commands a new user types: `make demo` and `make test`. Both install first if needed.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo-output

.PHONY: install demo test test-fast train eval bench clean

install: $(STAMP)

# Re-runs only when a file that decides the stack changes; the script itself skips what is there.
$(STAMP): constraints.txt requirements.txt setup.py scripts/install.sh
	bash scripts/install.sh
	touch $@

demo: $(STAMP)
	$(PY) run_pipeline.py --input 'assets/samples/images/*' --segmenter masks \
	  --masks assets/samples/masks --output $(DEMO_OUT) --report

test: $(STAMP)
	bash scripts/install_test_tools.sh
	$(PY) -m pytest tests

train: $(STAMP)
	$(PY) -m models.pconv.train $(ARGS)

eval: $(STAMP)
	$(PY) -m models.pconv.evaluate $(ARGS)

bench: $(STAMP)
	$(PY) benchmarks/pipeline_overhead.py --quick
	$(PY) benchmarks/batching.py --quick
	$(PY) benchmarks/memory.py
	$(PY) benchmarks/mask_memory.py
	$(PY) benchmarks/inpaint_memory.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info
