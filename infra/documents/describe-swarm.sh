#!/bin/sh
# describe-swarm (runs on a manager): one compact line per node, then refresh manager-addresses.
#
# Parameters (env): SK_PARAMETER_PREFIX, SK_REGION.
# Node lines: <id> <role> <state> <availability> <leader|reachable|unreachable|-> <ip> <hostname>
# Last stdout line: nodes=<count>
# shellcheck disable=SC2034 # read by fail (_prelude.sh)
ME=describe-swarm
# @include _prelude.sh
require SK_PARAMETER_PREFIX SK_REGION
# @include _scratch.sh
# @include _parameters.sh

ids=$(docker node ls -q 2>"$TMPD/err") || fail "docker node ls failed: $(excerpt <"$TMPD/err")"
[ -n "$ids" ] || fail "the swarm has no nodes"
# Managers: the address they advertise to the raft; workers: the address they connect from.
# The 6th field is the manager address with its port (used below, stripped from the output).
format="${OPEN}.ID${CLOSE} ${OPEN}.Spec.Role${CLOSE} ${OPEN}.Status.State${CLOSE} ${OPEN}.Spec.Availability${CLOSE} "
format="$format${OPEN}with .ManagerStatus${CLOSE}${OPEN}if .Leader${CLOSE}leader${OPEN}else${CLOSE}${OPEN}.Reachability${CLOSE}${OPEN}end${CLOSE} ${OPEN}.Addr${CLOSE}"
format="$format${OPEN}else${CLOSE}- -${OPEN}end${CLOSE} ${OPEN}.Status.Addr${CLOSE} ${OPEN}.Description.Hostname${CLOSE}"
# shellcheck disable=SC2086 # one argument per node id
docker node inspect -f "$format" $ids >"$TMPD/nodes" 2>"$TMPD/err" ||
	fail "docker node inspect failed: $(excerpt <"$TMPD/err")"

awk '{ ip = $7; if ($6 != "-") { ip = $6; sub(/:[0-9]+$/, "", ip) }
       print $1, $2, $3, $4, $5, ip, $8 }' "$TMPD/nodes"
publish_manager_addresses || echo "$ME: no reachable manager; manager-addresses left as it was" >&2
echo "nodes=$(grep -c . "$TMPD/nodes")"
