#!/bin/sh
# placeholder: describe-swarm
set -eu
echo "not implemented: describe-swarm" >&2
exit 1
