#!/bin/sh
# remove-node (runs on a manager): remove node SK_NODE_ID from the swarm, demoting it first when it is
# a manager; a node already gone counts as removed. Then refresh manager-addresses.
#
# Parameters (env): SK_NODE_ID, SK_PARAMETER_PREFIX, SK_REGION.
# Last stdout line: node-id=<id> removed=true
# shellcheck disable=SC2034 # read by fail (_prelude.sh)
ME=remove-node
# @include _prelude.sh
require SK_NODE_ID SK_PARAMETER_PREFIX SK_REGION
# @include _scratch.sh
# @include _parameters.sh

self=$(docker info -f "${OPEN}.Swarm.NodeID${CLOSE}")
[ "$self" != "$SK_NODE_ID" ] || fail "refusing to remove the node this command runs on"

gone=
if role=$(docker node inspect -f "${OPEN}.Spec.Role${CLOSE}" "$SK_NODE_ID" 2>"$TMPD/err"); then
	if [ "$role" = manager ]; then
		docker node demote "$SK_NODE_ID" >/dev/null 2>"$TMPD/err" || is_not_found "$(cat "$TMPD/err")" ||
			fail "docker node demote failed: $(excerpt <"$TMPD/err")"
	fi
elif is_not_found "$(cat "$TMPD/err")"; then
	gone=1
else
	fail "docker node inspect failed: $(excerpt <"$TMPD/err")"
fi

if [ -z "$gone" ]; then
	# A demotion takes effect asynchronously: rm refuses while the node is still a raft member.
	i=0
	until docker node rm --force "$SK_NODE_ID" >/dev/null 2>"$TMPD/err"; do
		err=$(excerpt <"$TMPD/err")
		is_not_found "$err" && break
		i=$((i + 1))
		case "$err" in
		*"demoted"* | *"raft"* | *"manager"*) [ "$i" -le 60 ] || fail "docker node rm failed: $err" ;;
		*) fail "docker node rm failed: $err" ;;
		esac
		sleep 1
	done
fi

publish_manager_addresses || echo "$ME: no reachable manager; manager-addresses left as it was" >&2
echo "node-id=$SK_NODE_ID removed=true"
