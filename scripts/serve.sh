#!/usr/bin/env bash
# Install confnode and run a node on its embedded defaults: SQLite in .confnode/, a self-signed
# certificate, HTTPS on https://127.0.0.1:8443. Extra arguments go to `confnode serve`.
source "$(dirname "$0")/venv.sh"
exec .venv/bin/confnode serve "$@"
