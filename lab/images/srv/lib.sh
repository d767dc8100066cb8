# shellcheck shell=sh
# Shared by the lab's service images (sourced): find a service's tasks by the swarm's DNS and ask one
# over HTTP. Names resolve with busybox's own resolver (a static glibc binary cannot use NSS), one A
# record per task (endpoint_mode: dnsrr).
NODE=${NODE:-$(hostname)}

addresses() {
	nslookup "$1" 2>/dev/null | awk '/^Address: /{print $2}'
}

# ask NAME PORT PATH: the body of the first task of NAME that answers, or "(NAME unreachable)".
ask() {
	for ip in $(addresses "$1"); do
		reply=$(printf 'GET %s HTTP/1.0\r\n\r\n' "$3" | nc -w 3 "$ip" "$2" | sed '1,/^\r*$/d')
		if [ -n "$reply" ]; then
			printf '%s\n' "$reply"
			return 0
		fi
	done
	echo "($1 unreachable)"
	return 1
}

cgi_header() {
	printf 'Content-Type: text/plain\r\n\r\n'
}
