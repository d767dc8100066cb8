# shellcheck shell=sh
# _parameters.sh: the String parameters the documents keep up to date (manager-addresses,
# cluster-id). infra/documents puts it in place of a script's `# @include _parameters.sh` line when
# it builds the document. Not a document of its own.
# Needs from the script: fail, excerpt, OPEN, CLOSE (_prelude.sh), TMPD (_scratch.sh), SK_REGION,
# SK_PARAMETER_PREFIX.

# put_string NAME VALUE: writes only when the value changed (PutParameter has a low rate limit).
put_string() {
	current=$(aws ssm get-parameter --region "$SK_REGION" --name "$1" --query Parameter.Value \
		--output text 2>/dev/null) || current=
	[ "$current" = "$2" ] && return 0
	aws ssm put-parameter --region "$SK_REGION" --name "$1" --type String --value "$2" --overwrite \
		>/dev/null 2>"$TMPD/err" || fail "put-parameter $1 failed: $(excerpt <"$TMPD/err")"
}

# manager_addresses: ip:port of every reachable manager, comma-separated (the leader counts as
# reachable), read from the managers' raft status alone: never from what a node reports about
# itself. Anything there that is not IPv4:port or [IPv6]:port is reported and left out.
manager_addresses() {
	ids=$(docker node ls -q --filter role=manager 2>"$TMPD/err") ||
		fail "docker node ls failed: $(excerpt <"$TMPD/err")"
	[ -n "$ids" ] || return 0
	format="${OPEN}with .ManagerStatus${CLOSE}${OPEN}.Reachability${CLOSE} ${OPEN}.Addr${CLOSE}${OPEN}end${CLOSE}"
	# shellcheck disable=SC2086 # one argument per node id
	raft=$(docker node inspect -f "$format" $ids 2>"$TMPD/err") ||
		fail "docker node inspect failed: $(excerpt <"$TMPD/err")"
	printf '%s\n' "$raft" | awk -v me="$ME" '
		$1 != "reachable" { next }
		NF == 2 && ($2 ~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+:[0-9]+$/ || $2 ~ /^\[[0-9A-Fa-f:.]+\]:[0-9]+$/) {
			printf "%s%s", sep, $2
			sep = ","
			next
		}
		{ print me ": not a manager address, left out: " substr($0, 1, 100) >"/dev/stderr" }'
}

# publish_manager_addresses: manager-addresses := manager_addresses; 1 (nothing written) when no
# manager is reachable.
publish_manager_addresses() {
	addrs=$(manager_addresses) || exit 1
	[ -n "$addrs" ] || return 1
	put_string "$SK_PARAMETER_PREFIX/manager-addresses" "$addrs"
}
