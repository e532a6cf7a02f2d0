# Shared by scripts/test and scripts/demo: install what the project needs on a fresh machine.
# shellcheck shell=bash

# The demo needs a local Dovecot; the tests also chromium and a font (the digest
# render check) and libcairo2 (rasterising the SVG QR codes).
DEMO_PACKAGES=(dovecot-imapd dovecot-core)
TEST_PACKAGES=("${DEMO_PACKAGES[@]}" libcairo2 chromium fonts-dejavu-core)

need_root_for() {
  if [ "$(id -u)" != 0 ]; then
    echo "error: $1 is missing and installing it needs root (run as root, or: sudo apt-get install $1)" >&2
    exit 2
  fi
}

ensure_debian_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  need_root_for "${missing[*]}"
  echo "==> apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_venv() {
  local extras=$1
  if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    python3 -m venv .venv
  fi
  # Reinstall only when setup.cfg changed since the last install.
  local stamp=.venv/.installed-$extras
  if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
    echo "==> pip install -e .[$extras]"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e ".[$extras]"
    touch "$stamp"
  fi
}
