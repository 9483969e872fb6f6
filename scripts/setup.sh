#!/usr/bin/env bash
# Installs what trafgen needs on a fresh Debian machine; quick (about a second) when all is done.
#
#   - Debian packages: libpcap-dev (pcap crate), tcpdump, tshark, iproute2 (tests), tcpreplay
#     (bench/emit.sh compares against it),
#     pkg-config, build-essential; python3 + python3-venv when the venv must be created.
#   - libtorch from PyPI: a venv (default .venv) with torch==$TORCH_VERSION, and the symlink
#     .venv/torch -> the wheel's torch directory, which .cargo/config.toml names as LIBTORCH
#     (build.rs embeds the rpath, so nobody sets LD_LIBRARY_PATH).
#   - Checks that cargo is on PATH (sources ~/.cargo/env when present); it does not install Rust.
#
# Idempotent; runs as root, or uses sudo for apt when not root.
# TRAFGEN_VENV=DIR uses another venv directory (for testing this script); the build itself
# always reads .venv/torch (see .cargo/config.toml).
set -euo pipefail

# Must equal the TORCH_VERSION that the pinned tch (Cargo.toml: tch = "=0.26.0") expects.
# tch 0.26 -> 2.13.0, 0.25 -> 2.12, 0.24 -> 2.11 (shared/notes/dependencies.md).
TORCH_VERSION="2.13.0"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${TRAFGEN_VENV:-$ROOT/.venv}"
# systemd: only for `systemd-analyze verify` of systemd/trafgend.service (tests/daemon.rs).
APT_PACKAGES=(libpcap-dev tcpdump tshark iproute2 pkg-config build-essential tcpreplay systemd)

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly, or through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "not root and no sudo: run as root to install: $*"
    fi
}

# Prints the packages of "$@" that are not installed.
missing_packages() {
    local pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            printf '%s\n' "$pkg"
        fi
    done
}

# True when the venv already holds torch $TORCH_VERSION (checked without importing torch).
venv_has_torch() {
    local purelib
    [ -x "$VENV/bin/python" ] || return 1
    purelib="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || return 1
    [ -f "$purelib/torch-$TORCH_VERSION.dist-info/METADATA" ] && [ -d "$purelib/torch/lib" ]
}

# True when python3 can create the venv without Debian's python3-venv package: either the
# venv exists already, or python3 is not Debian's (e.g. pyenv) and ships ensurepip.
venv_needs_debian_python() {
    [ -x "$VENV/bin/python" ] && return 1
    command -v python3 >/dev/null 2>&1 || return 0
    local exe
    exe="$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))' 2>/dev/null)" || return 0
    case "$exe" in
        /usr/bin/*) [ -n "$(missing_packages python3-venv)" ] ;;
        *) ! python3 -c 'import ensurepip' >/dev/null 2>&1 ;;
    esac
}

install_apt_packages() {
    local wanted=("${APT_PACKAGES[@]}")
    if venv_needs_debian_python; then
        wanted+=(python3 python3-venv)
    fi
    local missing
    mapfile -t missing < <(missing_packages "${wanted[@]}")
    if [ "${#missing[@]}" -eq 0 ]; then
        say "Debian packages: ok"
        return
    fi
    command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and no apt-get"
    say "installing Debian packages: ${missing[*]}"
    # tshark asks whether non-root users may capture; answer no, without a prompt.
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | as_root debconf-set-selections
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

install_torch() {
    if venv_has_torch; then
        say "torch $TORCH_VERSION in $VENV: ok"
        return
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating venv $VENV"
        python3 -m venv "$VENV"
    fi
    say "installing torch==$TORCH_VERSION into $VENV (about 2.6 GB download, 4.7 GB on disk)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
    venv_has_torch || die "torch $TORCH_VERSION is still missing from $VENV after pip install"
}

# Points $VENV/torch at the wheel's torch directory (relative, so the checkout may move).
link_libtorch() {
    local purelib target
    purelib="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    target="$purelib/torch"
    case "$target" in
        "$VENV"/*) target="${target#"$VENV"/}" ;;
    esac
    if [ "$(readlink "$VENV/torch" 2>/dev/null || true)" = "$target" ]; then
        say "libtorch link $VENV/torch: ok"
        return
    fi
    # Replace atomically: a build running meanwhile never sees the link missing.
    ln -sfn "$target" "$VENV/torch.tmp.$$"
    mv -Tf "$VENV/torch.tmp.$$" "$VENV/torch"
    say "linked $VENV/torch -> $target"
}

check_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
        # shellcheck source=/dev/null
        . "$HOME/.cargo/env"
    fi
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found: install Rust >= 1.85 (https://rustup.rs), then re-run"
    say "cargo: $(cargo --version)"
}

install_apt_packages
install_torch
link_libtorch
check_cargo
say "done"
