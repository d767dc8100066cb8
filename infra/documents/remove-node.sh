#!/bin/sh
# remove-node (runs on a manager): remove node SK_NODE_ID from the swarm, demoting it first when it is
# a manager; a node already gone counts as removed. Then refresh manager-addresses.
#
# Parameters (env): SK_NODE_ID, SK_PARAMETER_PREFIX, SK_REGION.
# Last stdout line: node-id=<id> removed=true
set -eu
# Docker Go templates are put together at run time: in an SSM document a double brace means a
# document parameter.
o='{''{' c='}''}'

fail() {
	echo "remove-node: $*" >&2
	exit 1
}
oneline() { tr '\n' ' ' | cut -c1-400; }

for v in SK_NODE_ID SK_PARAMETER_PREFIX SK_REGION; do
	eval "val=\${$v:-}"
	[ -n "$val" ] || fail "$v is not set"
done

TMPD=$(mktemp -d)
trap 'rm -rf "$TMPD"' EXIT
trap 'exit 130' INT TERM

is_not_found() {
	case "$1" in *"not found"* | *"No such node"* | *"no such node"*) return 0 ;; esac
	return 1
}

# put_string NAME VALUE: writes only when the value changed (PutParameter has a low rate limit).
put_string() {
	current=$(aws ssm get-parameter --region "$SK_REGION" --name "$1" --query Parameter.Value \
		--output text 2>/dev/null) || current=
	[ "$current" = "$2" ] && return 0
	aws ssm put-parameter --region "$SK_REGION" --name "$1" --type String --value "$2" --overwrite \
		>/dev/null 2>"$TMPD/err" || fail "put-parameter $1 failed: $(oneline <"$TMPD/err")"
}

# ip:port of every reachable manager, comma-separated (the leader counts as reachable).
manager_addresses() {
	ids=$(docker node ls -q --filter role=manager) || fail "docker node ls failed"
	[ -n "$ids" ] || return 0
	# shellcheck disable=SC2086 # one argument per node id
	docker node inspect -f "${o}with .ManagerStatus${c}${o}.Reachability${c} ${o}.Addr${c}${o}end${c}" $ids |
		awk '$1 == "reachable" { printf "%s%s", sep, $2; sep = "," }'
}

self=$(docker info -f "${o}.Swarm.NodeID${c}")
[ "$self" != "$SK_NODE_ID" ] || fail "refusing to remove the node this command runs on"

gone=
if role=$(docker node inspect -f "${o}.Spec.Role${c}" "$SK_NODE_ID" 2>"$TMPD/err"); then
	if [ "$role" = manager ]; then
		docker node demote "$SK_NODE_ID" >/dev/null 2>"$TMPD/err" || is_not_found "$(cat "$TMPD/err")" ||
			fail "docker node demote failed: $(oneline <"$TMPD/err")"
	fi
elif is_not_found "$(cat "$TMPD/err")"; then
	gone=1
else
	fail "docker node inspect failed: $(oneline <"$TMPD/err")"
fi

if [ -z "$gone" ]; then
	# A demotion takes effect asynchronously: rm refuses while the node is still a raft member.
	i=0
	until docker node rm --force "$SK_NODE_ID" >/dev/null 2>"$TMPD/err"; do
		err=$(oneline <"$TMPD/err")
		is_not_found "$err" && break
		i=$((i + 1))
		case "$err" in
		*"demoted"* | *"raft"* | *"manager"*) [ "$i" -le 60 ] || fail "docker node rm failed: $err" ;;
		*) fail "docker node rm failed: $err" ;;
		esac
		sleep 1
	done
fi

addrs=$(manager_addresses)
[ -z "$addrs" ] || put_string "$SK_PARAMETER_PREFIX/manager-addresses" "$addrs"
echo "node-id=$SK_NODE_ID removed=true"
