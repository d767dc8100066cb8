# shellcheck shell=sh
# _tokens.sh: the join-token publishing that bootstrap-node and rotate-tokens share. infra/documents
# puts it in place of their `# @include _tokens.sh` line when it builds each document (an instance
# runs a document alone). Not a document of its own.
# Needs from the script: fail, excerpt (_prelude.sh), TMPD (_scratch.sh), SK_KMS_KEY_ID, SK_REGION.

# put_secure NAME FILE: FILE holds the token. The request goes through a 0600 JSON file, so the value
# is never an argument of any process.
put_secure() {
	token=$(cat "$2")
	case "$token" in
	SWMTKN-*[!A-Za-z0-9-]* | "") fail "unexpected join token format for $1" ;;
	SWMTKN-*) ;;
	*) fail "unexpected join token format for $1" ;;
	esac
	printf '{"Name": "%s", "Type": "SecureString", "KeyId": "%s", "Overwrite": true, "Value": "%s"}\n' \
		"$1" "$SK_KMS_KEY_ID" "$token" >"$TMPD/put.json"
	token=
	aws ssm put-parameter --region "$SK_REGION" --cli-input-json "file://$TMPD/put.json" \
		>/dev/null 2>"$TMPD/err" || { rm -f "$TMPD/put.json"; fail "put-parameter $1 failed: $(excerpt <"$TMPD/err")"; }
	rm -f "$TMPD/put.json"
}
