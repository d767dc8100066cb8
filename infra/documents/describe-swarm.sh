#!/bin/sh
# describe-swarm (runs on a manager): refresh manager-addresses, then one line per node.
#
# Parameters (env): SK_PARAMETER_PREFIX, SK_REGION.
# Node lines: <id> <role> <state> <availability> <leader|reachable|unreachable|-> <ip> <hostname>,
#   every field percent-encoded the way Go's urlquery does it (a space is `+`; anything but letters,
#   digits and `-_.~` is %XX) and `-` when empty: whatever a node says about itself (its hostname)
#   stays inside its own field on its own line.
# Before them, one line per port a service publishes, then ports=<number of port lines>:
#   port <service> <protocol> <published> <target> <mode> <certificate label or ->, encoded the same way.
# Last stdout line: nodes=<number of node lines>
# shellcheck disable=SC2034 # read by fail (_prelude.sh)
ME=describe-swarm
# @include _prelude.sh
require SK_PARAMETER_PREFIX SK_REGION
# @include _scratch.sh
# @include _parameters.sh

publish_manager_addresses || echo "$ME: no reachable manager; manager-addresses left as it was" >&2

services=$(docker service ls -q 2>"$TMPD/err") || fail "docker service ls failed: $(excerpt <"$TMPD/err")"
# field TEMPLATE-VALUE: the template of one encoded field.
field() { printf '%surlquery (or %s "-")%s' "$OPEN" "$1" "$CLOSE"; }
ports=""
if [ -n "$services" ]; then
	label="(index \$.Spec.Labels \"swarmkeeper.lb.certificate\")"
	pformat="${OPEN}range .Endpoint.Ports${CLOSE}port $(field '$.Spec.Name') $(field .Protocol)"
	pformat="$pformat $(field .PublishedPort) $(field .TargetPort) $(field .PublishMode) $(field "$label")"
	pformat="$pformat${OPEN}println${CLOSE}${OPEN}end${CLOSE}"
	# shellcheck disable=SC2086 # one argument per service id
	ports=$(docker service inspect -f "$pformat" $services 2>"$TMPD/err") ||
		fail "docker service inspect failed: $(excerpt <"$TMPD/err")"
fi
printf '%s\n' "$ports" | awk 'NF == 0 { next } { print; n++ } END { print "ports=" n + 0 }'

ids=$(docker node ls -q 2>"$TMPD/err") || fail "docker node ls failed: $(excerpt <"$TMPD/err")"
[ -n "$ids" ] || fail "the swarm has no nodes"
# Managers: the address they advertise to the raft; workers: the address they connect from. The 6th
# field is the manager's address with its port (%3A<port>), stripped below.
format="$(field .ID) $(field .Spec.Role) $(field .Status.State) $(field .Spec.Availability) "
format="$format${OPEN}with .ManagerStatus${CLOSE}${OPEN}if .Leader${CLOSE}leader${OPEN}else${CLOSE}"
format="$format$(field .Reachability)${OPEN}end${CLOSE} $(field .Addr)${OPEN}else${CLOSE}- -${OPEN}end${CLOSE}"
format="$format $(field .Status.Addr) $(field .Description.Hostname)"
# shellcheck disable=SC2086 # one argument per node id
nodes=$(docker node inspect -f "$format" $ids 2>"$TMPD/err") ||
	fail "docker node inspect failed: $(excerpt <"$TMPD/err")"

printf '%s\n' "$nodes" | awk '
	NF == 0 { next }
	{
		ip = $7
		if ($6 != "-") { ip = $6; sub(/%3A[0-9]+$/, "", ip); sub(/^%5B/, "", ip); sub(/%5D$/, "", ip) }
		print $1, $2, $3, $4, $5, ip, $8
		n++
	}
	END { print "nodes=" n + 0 }'
