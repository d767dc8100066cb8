#!/bin/sh
# leave-swarm (runs on the leaving node): leave the swarm; --force when this node is still a manager
# (demote it from another manager first to keep quorum). Not in a swarm = success.
#
# Parameters: none.
# Last stdout line: left=true
set -eu
# Docker Go templates are put together at run time: in an SSM document a double brace means a
# document parameter.
o='{''{' c='}''}'

fail() {
	echo "leave-swarm: $*" >&2
	exit 1
}

info=$(docker info -f "${o}.Swarm.LocalNodeState${c} ${o}.Swarm.ControlAvailable${c}" 2>&1) ||
	fail "docker is not running: $(echo "$info" | tr '\n' ' ')"
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
		*) fail "docker swarm leave failed: $(echo "$err" | tr '\n' ' ')" ;;
		esac
	fi
fi
echo "left=true"
