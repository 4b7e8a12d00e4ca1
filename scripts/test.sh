#!/usr/bin/env bash
# Install everything the test suite needs and run all of it (this is what CI runs).
# Real components a test needs are installed here; under CI=true a missing one fails the run.
CONFNODE_EXTRAS="[test]" source "$(dirname "$0")/venv.sh"

# System packages the suite drives for real: PostgreSQL (asyncpg store tests), Chromium and
# its driver (browser tests), Node.js + npm (bundling Pexip's client SDK for a browser test),
# baresip (a real SIP/TLS + SRTP client), Janus (the WebRTC server bench/janus_side_by_side.py
# measures confnode against).
need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
command -v npm >/dev/null || need+=(nodejs npm)
command -v baresip >/dev/null || need+=(baresip)
[ -x /usr/bin/janus ] || need+=(janus)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${need[@]}" >/dev/null
    else
        echo "missing system packages (install as root): ${need[*]}" >&2
    fi
fi

export PYTHONDONTWRITEBYTECODE=1
.venv/bin/ruff check confnode tests bench loadtests examples
# The suite, then a short smoke run of every benchmark so they cannot rot.
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
.venv/bin/python -m pytest -q -p no:cacheprovider bench --benchmark-disable
