#!/bin/sh
# placeholder: drain-node
set -eu
echo "not implemented: drain-node" >&2
exit 1
