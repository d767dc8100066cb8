#!/bin/sh
# drain-node (runs on a manager): set node SK_NODE_ID to drain and wait until none of its tasks is
# still desired running, at most SK_TIMEOUT_SECONDS.
#
# Parameters (env): SK_NODE_ID, SK_TIMEOUT_SECONDS.
# Last stdout line: node-id=<id> tasks-remaining=<n>
# Exit 0 even when n > 0 (the caller decides). A node the swarm no longer knows has nothing to drain:
# node-id=<id> tasks-remaining=0 missing=true (also when it is removed while it drains)
# shellcheck disable=SC2034 # read by fail (_prelude.sh)
ME=drain-node
# @include _prelude.sh
require SK_NODE_ID
timeout=${SK_TIMEOUT_SECONDS:-60}
case "$timeout" in "" | *[!0-9]*) fail "SK_TIMEOUT_SECONDS must be a number" ;; esac
# @include _scratch.sh

missing() {
	echo "node-id=$SK_NODE_ID tasks-remaining=0 missing=true"
	exit 0
}

if ! docker node update --availability drain "$SK_NODE_ID" >/dev/null 2>"$TMPD/err"; then
	is_not_found "$(cat "$TMPD/err")" && missing
	fail "docker node update --availability drain failed: $(excerpt <"$TMPD/err")"
fi

deadline=$(($(date +%s) + timeout))
while :; do
	if ! tasks=$(docker node ps -q --filter desired-state=running "$SK_NODE_ID" 2>"$TMPD/err"); then
		is_not_found "$(cat "$TMPD/err")" && missing # removed while it drained
		fail "docker node ps failed: $(excerpt <"$TMPD/err")"
	fi
	remaining=$(printf '%s\n' "$tasks" | awk 'NF { n++ } END { print n + 0 }')
	[ "$remaining" -eq 0 ] && break
	[ "$(date +%s)" -lt "$deadline" ] || break
	sleep 1
done
echo "node-id=$SK_NODE_ID tasks-remaining=$remaining"
