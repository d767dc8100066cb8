#!/bin/sh
# describe-swarm (runs on a manager): one compact line per node, then refresh manager-addresses.
#
# Parameters (env): SK_PARAMETER_PREFIX, SK_REGION.
# Node lines: <id> <role> <state> <availability> <leader|reachable|unreachable|-> <ip> <hostname>
# Last stdout line: nodes=<count>
set -eu
# Docker Go templates are put together at run time: in an SSM document a double brace means a
# document parameter.
o='{''{' c='}''}'

fail() {
	echo "describe-swarm: $*" >&2
	exit 1
}
oneline() { tr '\n' ' ' | cut -c1-400; }

for v in SK_PARAMETER_PREFIX SK_REGION; do
	eval "val=\${$v:-}"
	[ -n "$val" ] || fail "$v is not set"
done

TMPD=$(mktemp -d)
trap 'rm -rf "$TMPD"' EXIT
trap 'exit 130' INT TERM

# put_string NAME VALUE: writes only when the value changed (PutParameter has a low rate limit).
put_string() {
	current=$(aws ssm get-parameter --region "$SK_REGION" --name "$1" --query Parameter.Value \
		--output text 2>/dev/null) || current=
	[ "$current" = "$2" ] && return 0
	aws ssm put-parameter --region "$SK_REGION" --name "$1" --type String --value "$2" --overwrite \
		>/dev/null 2>"$TMPD/err" || fail "put-parameter $1 failed: $(oneline <"$TMPD/err")"
}

ids=$(docker node ls -q 2>"$TMPD/err") || fail "docker node ls failed: $(oneline <"$TMPD/err")"
[ -n "$ids" ] || fail "the swarm has no nodes"
# Managers: the address they advertise to the raft; workers: the address they connect from.
# The 6th field is the manager address with its port (used below, stripped from the output).
format="${o}.ID${c} ${o}.Spec.Role${c} ${o}.Status.State${c} ${o}.Spec.Availability${c} "
format="$format${o}with .ManagerStatus${c}${o}if .Leader${c}leader${o}else${c}${o}.Reachability${c}${o}end${c} ${o}.Addr${c}"
format="$format${o}else${c}- -${o}end${c} ${o}.Status.Addr${c} ${o}.Description.Hostname${c}"
# shellcheck disable=SC2086 # one argument per node id
docker node inspect -f "$format" $ids >"$TMPD/nodes" 2>"$TMPD/err" ||
	fail "docker node inspect failed: $(oneline <"$TMPD/err")"

awk '{ ip = $7; if ($6 != "-") { ip = $6; sub(/:[0-9]+$/, "", ip) }
       print $1, $2, $3, $4, $5, ip, $8 }' "$TMPD/nodes"
addrs=$(awk '$5 == "leader" || $5 == "reachable" { printf "%s%s", sep, $6; sep = "," }' "$TMPD/nodes")
[ -z "$addrs" ] || put_string "$SK_PARAMETER_PREFIX/manager-addresses" "$addrs"
echo "nodes=$(grep -c . "$TMPD/nodes")"
