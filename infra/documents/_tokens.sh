# shellcheck shell=sh
# _tokens.sh: the join-token handling that bootstrap-node and rotate-tokens share. infra/documents
# puts it in place of their `# @include _tokens.sh` line when it builds each document (an instance
# runs a document alone). Not a document of its own.
# Needs from the script: fail, excerpt (_prelude.sh), TMPD (_scratch.sh), SK_KMS_KEY_ID, SK_REGION.
#
# A token lives in a shell variable only. It reaches the AWS CLI (or dockerd) through a pipe written
# by printf, a builtin: never a file, never an argument of any process, so a run killed half-way
# leaves no token behind.

# check_token WHAT TOKEN: fail unless TOKEN looks like a swarm join token.
check_token() {
	case "$2" in
	SWMTKN-*[!A-Za-z0-9-]* | "") fail "unexpected join token format for $1" ;;
	SWMTKN-*) ;;
	*) fail "unexpected join token format for $1" ;;
	esac
}

# put_secure NAME TOKEN: stores TOKEN as the SecureString NAME under the cluster's KMS key.
put_secure() {
	check_token "$1" "$2"
	printf '%s' "$2" | aws ssm put-parameter --region "$SK_REGION" --name "$1" --type SecureString \
		--key-id "$SK_KMS_KEY_ID" --overwrite --value file:///dev/stdin >/dev/null 2>"$TMPD/err" ||
		fail "put-parameter $1 failed: $(excerpt <"$TMPD/err")"
}
