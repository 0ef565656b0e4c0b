# need.sh: sourced by the scripts that install what they use.
#
#   need CMD[:PACKAGE]...   installs with apt-get the packages of the commands
#                           that are missing (PACKAGE defaults to CMD)
#
# Another apt (unattended-upgrades, a second script) holding the dpkg or apt
# lock is waited for, up to NEED_LOCK_WAIT seconds (default 600), instead of
# failing; when an install fails, apt's own output is shown.

apt_locked() { grep -qE "Could not get lock|Unable to acquire the dpkg frontend lock|Unable to lock|is held by process" "$1"; }

need() {
	local spec pkgs=""
	for spec in "$@"; do
		command -v "${spec%%:*}" >/dev/null 2>&1 || pkgs="$pkgs ${spec#*:}"
	done
	[ -z "$pkgs" ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "need:$pkgs missing, and installing them needs root" >&2
		return 1
	fi
	echo "  installing$pkgs (apt-get)"
	local log deadline=$((SECONDS + ${NEED_LOCK_WAIT:-600})) said=""
	log=$(mktemp /tmp/edge-apt.XXXXXX)
	while :; do
		if apt-get -o DPkg::Lock::Timeout=60 update -q >"$log" 2>&1 &&
			DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=60 install -y -q $pkgs >>"$log" 2>&1; then
			rm -f "$log"
			return 0
		fi
		apt_locked "$log" && [ "$SECONDS" -lt "$deadline" ] || break
		[ -n "$said" ] || echo "  apt is locked by another process; waiting (up to ${NEED_LOCK_WAIT:-600} s)" >&2
		said=1
		sleep 5
	done
	echo "need: cannot install$pkgs; apt-get said:" >&2
	tail -n 25 "$log" | sed 's/^/  | /' >&2
	rm -f "$log"
	return 1
}
