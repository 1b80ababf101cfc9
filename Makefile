# lift3d: two commands do all set-up on a fresh machine.
#   make demo   creates .venv, installs lift3d, runs the demo (generate -> fit -> render -> eval)
#   make test   creates .venv, installs lift3d with test extras, runs ruff, the import-layer contract and the suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# torch is pinned in the SAME pip command as everything that asks for bare `torch` (nerfacc), so pip keeps
# the CPU wheel instead of pulling a CUDA build.
TORCH  := torch==2.13.0

.PHONY: demo test install install-test system-deps clean

# open3d's wheel links libusb-1.0; the viewer's browser test drives Debian's chromium (headless, SwiftShader WebGL).
# Install them from Debian when missing (root on our machines, sudo elsewhere).
system-deps:
	@ldconfig -p 2>/dev/null | grep -q libusb-1.0 || { \
	  echo "installing libusb-1.0-0 (needed by open3d)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  ($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libusb-1.0-0) >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (the viewer's browser test)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  ($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium) >/dev/null; }

$(VENV)/.installed: pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH) -e ".[viewer]"
	touch $@

# make test also installs the kubric backend (bpy 4.2 + tensorflow-cpu for tf.io.gfile); kubric-nightly goes in
# with --no-deps because its declared dependencies (apache-beam, tfds, gcs) are not used.
$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q $(TORCH) -e ".[test,generate,viewer,colmap,segmenters,ray]"
	$(PIP) install -q --no-deps kubric-nightly==2023.12.27
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(VENV)/bin/lift3d demo --out outputs/demo

# lint and layer contract first (seconds), then the suite
test: install-test
	$(VENV)/bin/ruff check lift3d tools tests
	$(VENV)/bin/ruff format --check lift3d tools tests
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -q --timeout=600 tests

clean:
	rm -rf $(VENV) outputs .pytest_cache
