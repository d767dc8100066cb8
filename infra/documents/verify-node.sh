#!/bin/sh
# verify-node (runs on a manager): label node SK_NODE_ID from its instance, then wait until it is
# ready with role SK_ROLE. A manager sets the labels because a node cannot label itself.
#
# Parameters (env): SK_NODE_ID, SK_ROLE (manager|worker), SK_AVAILABILITY_ZONE, SK_INSTANCE_TYPE,
#   SK_LIFECYCLE (spot|on-demand), SK_TIMEOUT_SECONDS.
# Labels (as soon as the manager knows the node, read back after): swarmkeeper.az,
#   swarmkeeper.instance-type, swarmkeeper.lifecycle, swarmkeeper.role. Idempotent.
# Last stdout line: node-id=<id> state=ready role=<role>
# Exit 1 when the labels cannot be set, or after SK_TIMEOUT_SECONDS with the state and role last seen.
# shellcheck disable=SC2034 # read by fail (_prelude.sh)
ME=verify-node
# @include _prelude.sh

require SK_NODE_ID SK_AVAILABILITY_ZONE SK_INSTANCE_TYPE
case "${SK_ROLE:-}" in manager | worker) ;; *) fail "SK_ROLE must be manager or worker" ;; esac
case "${SK_LIFECYCLE:-}" in spot | on-demand) ;; *) fail "SK_LIFECYCLE must be spot or on-demand" ;; esac
case "$SK_AVAILABILITY_ZONE$SK_INSTANCE_TYPE" in *[!a-z0-9.-]*) fail "label values may hold only a-z 0-9 . -" ;; esac
timeout=${SK_TIMEOUT_SECONDS:-60}
case "$timeout" in "" | *[!0-9]*) fail "SK_TIMEOUT_SECONDS must be a number" ;; esac

labels="swarmkeeper.az=$SK_AVAILABILITY_ZONE swarmkeeper.instance-type=$SK_INSTANCE_TYPE"
labels="$labels swarmkeeper.lifecycle=$SK_LIFECYCLE swarmkeeper.role=$SK_ROLE"

# label_node: --label-add each label (a few tries: an update racing another one of the same node is
# refused as out of sequence), then fail unless the node carries every one.
label_node() {
	args=
	for label in $labels; do args="$args --label-add $label"; done
	tries=1
	# shellcheck disable=SC2086 # one word per argument; the values hold no space (checked above)
	until err=$(docker node update $args "$SK_NODE_ID" 2>&1 >/dev/null); do
		[ "$tries" -lt 3 ] || fail "cannot label node $SK_NODE_ID: $(echo "$err" | excerpt)"
		tries=$((tries + 1))
		sleep 1
	done
	have=$(docker node inspect -f "${OPEN}range \$k, \$v := .Spec.Labels${CLOSE}${OPEN}\$k${CLOSE}=${OPEN}\$v${CLOSE} ${OPEN}end${CLOSE}" "$SK_NODE_ID") ||
		fail "cannot read the labels of node $SK_NODE_ID back"
	for label in $labels; do
		case " $have " in *" $label "*) ;; *) fail "node $SK_NODE_ID does not carry $label after labelling (has: $have)" ;; esac
	done
}

deadline=$(($(date +%s) + timeout))
seen="not-found -"
labelled=false
while :; do
	if out=$(docker node inspect -f "${OPEN}.Status.State${CLOSE} ${OPEN}.Spec.Role${CLOSE}" "$SK_NODE_ID" 2>/dev/null); then
		seen=$out
		if [ "$labelled" = false ]; then
			label_node
			labelled=true
		fi
		[ "$seen" = "ready $SK_ROLE" ] && break
	fi
	[ "$(date +%s)" -lt "$deadline" ] ||
		fail "node $SK_NODE_ID not ready as $SK_ROLE after ${timeout}s: state=${seen% *} role=${seen#* }"
	sleep 1
done
echo "node-id=$SK_NODE_ID state=ready role=$SK_ROLE"
