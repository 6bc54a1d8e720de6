# Shared set-up for scripts/demo and scripts/test: installs what is missing, idempotently.
# Sourced, not executed. Works on a fresh Debian with Python 3.11 and Node 20, as root or not.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

log() { printf '[fhir-cml] %s\n' "$*" >&2; }

# Debian packages, installed when missing (needs root, or sudo without a password).
apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    command -v apt-get >/dev/null || { log "apt-get not found: install $* by hand"; return 1; }
    log "installing $* with apt-get"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 || {
        $sudo apt-get update -q >/dev/null 2>&1
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
    }
}

# Python virtual environment with the package and the given extras, reinstalled only when
# pyproject.toml changes.
ensure_python() {
    local extras="${1:-}"
    local stamp="$VENV/.installed${extras:+-$extras}"
    if [ ! -x "$PY" ]; then
        python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
            log "fhir-cml needs Python 3.11 or newer; python3 is $(python3 --version 2>&1)"
            return 1
        }
        log "creating virtual environment in .venv"
        if ! python3 -m venv "$VENV" 2>/dev/null; then
            # Debian's python3 ships venv (ensurepip) separately.
            rm -rf "$VENV"
            apt_install python3-venv
            python3 -m venv "$VENV"
        fi
    fi
    if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
        log "installing fhir-cml${extras:+[$extras]} and its pinned dependencies"
        local pip_log="$VENV/pip-install.log"
        if ! { "$PY" -m pip install --upgrade pip && "$PY" -m pip install -e "$ROOT${extras:+[$extras]}"; } >"$pip_log" 2>&1; then
            cat "$pip_log" >&2
            log "pip install failed (log above, also in $pip_log)"
            return 1
        fi
        touch "$stamp"
    fi
    export PATH="$VENV/bin:$PATH"
}

# Node packages of the test FHIR server (tests/fhir_server), including the Node 22 binary it runs
# on, reinstalled only when package-lock.json is newer than node_modules.
ensure_test_fhir_server() {
    local dir="$ROOT/tests/fhir_server"
    if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
        log "installing the test FHIR server's Node packages (npm ci)"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
        touch "$dir/node_modules"
    fi
}

# npm tools of profiles/ (SUSHI, the R4 definitions, Medplum's validator and the Node 22 it runs
# on): the profile validator the tests use and the rebuild (profiles/build) need them;
# reinstalled only when package-lock.json is newer than node_modules.
ensure_profile_tools() {
    local dir="$ROOT/profiles/tools"
    if [ ! -f "$dir/node_modules/.installed" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.installed" ]; then
        log "installing the profile tools' Node packages (npm ci)"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
        touch "$dir/node_modules/.installed"
    fi
}

# PostgreSQL binaries for the state store's tests (tests/support/postgres.py starts a throw-away
# server on loopback). Installed from Debian's packages when missing and apt-get can be used.
ensure_postgresql() {
    if command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
        return
    fi
    apt_install postgresql || {
        log "PostgreSQL could not be installed (needs root or sudo, and apt-get); the state"
        log "store's PostgreSQL tests will fail until it is: apt-get install postgresql"
    }
}

# Debian's Chromium for the SMART app's browser test: Playwright drives /usr/bin/chromium and
# downloads no browser of its own. Installed from Debian's packages when missing.
ensure_chromium() {
    if [ -x /usr/bin/chromium ]; then
        return
    fi
    apt_install chromium fonts-dejavu-core || {
        log "Chromium could not be installed (needs root or sudo, and apt-get); the browser"
        log "test will fail until it is: apt-get install chromium"
    }
}
