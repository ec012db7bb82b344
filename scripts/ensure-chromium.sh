#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver (Debian's chromium and chromium-driver) when
# missing: the console's browser tests (scripts/test-console.py) drive a real browser.
exec "$(dirname "$0")/ensure-packages.sh" "the console's browser tests" \
    "chromium chromium-driver" chromium chromedriver
