#!/bin/sh
# leave-swarm (runs on the leaving node): leave the swarm; --force when this node is still a manager
# (demote it from another manager first to keep quorum). Not in a swarm = success.
#
# Parameters: none.
# Last stdout line: left=true
# shellcheck disable=SC2034 # read by fail (_prelude.sh)
ME=leave-swarm
# @include _prelude.sh

info=$(docker info -f "${OPEN}.Swarm.LocalNodeState${CLOSE} ${OPEN}.Swarm.ControlAvailable${CLOSE}" 2>&1) ||
	fail "docker is not running: $(echo "$info" | excerpt)"
state=${info% *}
control=${info#* }

if [ "$state" != inactive ]; then
	if [ "$control" = true ] || [ "$state" != active ]; then
		err=$(docker swarm leave --force 2>&1 >/dev/null) || leave_failed=1
	else
		err=$(docker swarm leave 2>&1 >/dev/null) || leave_failed=1
	fi
	if [ -n "${leave_failed:-}" ]; then
		case "$err" in
		*"not part of a swarm"*) ;;
		*) fail "docker swarm leave failed: $(echo "$err" | excerpt)" ;;
		esac
	fi
fi
echo "left=true"
