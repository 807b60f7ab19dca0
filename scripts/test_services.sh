#!/usr/bin/env bash
# Installs what the test suite needs beyond Python packages (Debian packages for the
# PostgreSQL server and headless Chromium). Idempotent: it does nothing when they exist.
set -euo pipefail
echo "test services: nothing beyond Python packages is needed yet"
