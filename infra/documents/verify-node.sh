#!/bin/sh
# verify-node (runs on a manager): wait until node SK_NODE_ID is ready with role SK_ROLE.
#
# Parameters (env): SK_NODE_ID, SK_ROLE (manager|worker), SK_TIMEOUT_SECONDS.
# Last stdout line: node-id=<id> state=ready role=<role>
# Exit 1 after SK_TIMEOUT_SECONDS with the state and role last seen.
# shellcheck disable=SC2034 # read by fail (_prelude.sh)
ME=verify-node
# @include _prelude.sh

require SK_NODE_ID
case "${SK_ROLE:-}" in manager | worker) ;; *) fail "SK_ROLE must be manager or worker" ;; esac
timeout=${SK_TIMEOUT_SECONDS:-60}
case "$timeout" in "" | *[!0-9]*) fail "SK_TIMEOUT_SECONDS must be a number" ;; esac

deadline=$(($(date +%s) + timeout))
seen="not-found -"
while :; do
	if out=$(docker node inspect -f "${OPEN}.Status.State${CLOSE} ${OPEN}.Spec.Role${CLOSE}" "$SK_NODE_ID" 2>/dev/null); then
		seen=$out
		[ "$seen" = "ready $SK_ROLE" ] && break
	fi
	[ "$(date +%s)" -lt "$deadline" ] ||
		fail "node $SK_NODE_ID not ready as $SK_ROLE after ${timeout}s: state=${seen% *} role=${seen#* }"
	sleep 1
done
echo "node-id=$SK_NODE_ID state=ready role=$SK_ROLE"
