# Sourced by the README's two commands (scripts/run-main.sh, scripts/test.sh): goes to the repo
# root, installs whatever is missing (scripts/setup.sh, quick when done) and makes sure cargo is
# on PATH in this shell (setup.sh may have just installed or found it under ~/.cargo).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi
