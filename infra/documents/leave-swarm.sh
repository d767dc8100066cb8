#!/bin/sh
# placeholder: leave-swarm
set -eu
echo "not implemented: leave-swarm" >&2
exit 1
