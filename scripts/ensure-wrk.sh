#!/usr/bin/env bash
# Installs wrk (Debian's package) when it is missing: `aerolith-loadtest compare` runs it
# against the HTTP ceiling to say how much of the ceiling its own client costs. Optional:
# without wrk the comparison skips that check. The test suite does not need it.
exec "$(dirname "$0")/ensure-packages.sh" "the comparison's client check" wrk wrk
