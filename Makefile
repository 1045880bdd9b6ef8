# The README's two commands: `make demo` and `make test`. Each works on a fresh Debian machine
# (as root): it installs the virtual-display packages, creates .venv and installs the project.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
APT_PKGS := xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-cursor0 \
            libxkbcommon-x11-0 libgl1-mesa-dri libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3
# No model hub is reachable here: make timm/SMP fail at once instead of retrying for 40 s.
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: demo test setup system-deps clean-venv

setup: system-deps $(STAMP)

system-deps:
	@if ! command -v Xvfb >/dev/null 2>&1 || ! ldconfig -p | grep -q libxcb-cursor; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing the virtual-display packages (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PKGS) >/dev/null; \
	  else echo "warning: not root; install these Debian packages for GUI tests: $(APT_PKGS)"; fi; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[gui,dev]'
	@touch $(STAMP)

# The demo: napari with the sample core and the docked widgets; with no display it renders the
# same under Xvfb and writes a screenshot whose path it prints.
demo: setup
	$(BIN)/python -m napari_gleason.demo

test: setup
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4

clean-venv:
	rm -rf $(VENV)
