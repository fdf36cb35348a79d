#!/usr/bin/env bash
# tcp_vs_kernel.sh: nvmeperf's NVMe/TCP host against the Linux kernel's nvme-tcp host
# (fio, io_uring, direct I/O on the block device the kernel creates), both against the
# SAME target in one run: IOPS and CPU per I/O side by side, best of RUNS by IOPS.
#
# Targets (--target, default "serve nvmet"; each is benchmarked in turn):
#   serve      `nvmeperf serve` on loopback with a simulated null namespace
#              (trtype:sim model:null store:discard mode:inline: no device thread,
#              no data kept): the target costs only its NVMe/TCP side
#   nvmet      the kernel's nvmet-tcp target on loopback (configfs), its namespace a
#              null_blk device made through null_blk's configfs (--backend null, the
#              default) or a file (--backend file, buffered I/O)
#   ADDR:PORT  an existing NVMe/TCP target, IPv4 (with --nqn); write rows need
#              --allow-destructive, since they overwrite the namespace
#
# For each target the kernel host connects once (a connect string written to
# /dev/nvme-fabrics; no nvme-cli needed) and fio runs on /dev/nvmeXnY; nvmeperf runs
# `-r 'trtype:TCP ...'` with the same queue depth, I/O size, pattern and duration. Rows
# (--rows, default "randread:1 randread:32 randwrite:32": PATTERN:QD, 4 KiB unless --bs).
#
# CPU per I/O, every figure in microseconds per completed I/O (see docs/tcp.md):
#   self     the tool's own figure: fio's job CPU from its JSON,
#            (usr_cpu + sys_cpu) / 100 x job_runtime / (read.total_ios + write.total_ios)
#            — usr_cpu and sys_cpu are percentages of ONE CPU over the job's runtime
#            (getrusage of the job process), so no core count enters; nvmeperf's
#            total.cpu.ns_per_io (its worker threads, measured phase only)
#   process  user+sys CPU of the tool's whole process tree from exec to exit (start-up,
#            connecting, tear-down included), measured the same way for both
#            (getrusage(RUSAGE_CHILDREN) around the run, through bash's `times`); for
#            the kernel host it misses the nvme-tcp driver's work in kernel worker
#            threads and softirqs
#   system   every CPU's busy time (/proc/stat, sampled every 0.1 s and interpolated)
#            over exactly the tool's measured phase (fio: the job_runtime before its
#            timestamp_ms; nvmeperf: start_time + duration_seconds): host, target,
#            kernel threads, network stack — and anything else running
#   host     the host core's busy time (/proc/stat's line for --core, same window)
#            when the target is `nvmeperf serve`, which is then pinned to the other
#            CPUs: the tool, the kernel host's work (nvme-tcp runs a queue's I/O work
#            on that queue's CPU, here the submitting one) and the network processing the host's
#            own sends trigger. The target's sends are processed on its cores, so the
#            split is the same for both hosts. The fairest figure here
#
# Needs: root, the nvme-tcp and nvme-fabrics modules (kernel host), fio with io_uring,
# configfs + nvmet + nvmet-tcp + null_blk (nvmet target), bash 5, awk. Cleans up (disconnects,
# stops serve, removes configfs entries) on every exit path.
set -uo pipefail

usage() {
	cat <<'EOF'
usage: tcp_vs_kernel.sh [options]
  --target LIST        "serve", "nvmet", "serve nvmet" (default) or IPv4ADDR:PORT of an existing target
  --nqn NQN            subsystem NQN (required with ADDR:PORT)
  --backend null|file  nvmet namespace: a null_blk device (default) or a file (buffered I/O)
  --hosts LIST         "kernel nvmeperf" (default), or one of them
  --rows LIST          PATTERN:QD pairs (default "randread:1 randread:32 randwrite:32")
  --bs BYTES           I/O size (default 4096)
  --seconds N          seconds per run (default 10)
  --runs N             runs per host and row; the best by IOPS is shown (default 3)
  --core N|none        CPU both host tools are pinned to (default 0)
  --port N             TCP port of the targets this script starts (default 4430)
  --size MIB           namespace size of the targets this script starts (default 1024)
  --nvmeperf PATH      nvmeperf binary (default: nvmeperf in PATH, else built from this checkout)
  --results FILE       also write one tab-separated line per host and row to FILE
  --allow-destructive  run write rows against an ADDR:PORT target
  --prefix STRING      prefix for every table line (the QEMU lab uses "LAB-INFO 68-tcp-bench: ")
Environment: the same settings as TARGETS, NQN, BACKEND, HOSTS, ROWS, BS, SECONDS_EACH,
RUNS, CORE, PORT, SIZE_MB, NVMEPERF, RESULTS.
EOF
}

TARGETS=${TARGETS:-"serve nvmet"}
NQN=${NQN:-}
BACKEND=${BACKEND:-null}
HOSTS=${HOSTS:-"kernel nvmeperf"}
ROWS=${ROWS:-"randread:1 randread:32 randwrite:32"}
BS=${BS:-4096}
SECONDS_EACH=${SECONDS_EACH:-10}
RUNS=${RUNS:-3}
CORE=${CORE:-0}
PORT=${PORT:-4430}
SIZE_MB=${SIZE_MB:-1024}
NVMEPERF=${NVMEPERF:-}
RESULTS=${RESULTS:-}
ALLOW_DESTRUCTIVE=0
PREFIX=""

die() {
	echo "tcp_vs_kernel: $*" >&2
	exit 1
}
usage_error() {
	echo "tcp_vs_kernel: $*" >&2
	echo "run with --help for the options" >&2
	exit 2
}
note() { echo "tcp_vs_kernel: $*" >&2; }

while [ $# -gt 0 ]; do
	case $1 in
	--target) TARGETS=${2-} ;;
	--nqn) NQN=${2-} ;;
	--backend) BACKEND=${2-} ;;
	--hosts) HOSTS=${2-} ;;
	--rows) ROWS=${2-} ;;
	--bs) BS=${2-} ;;
	--seconds) SECONDS_EACH=${2-} ;;
	--runs) RUNS=${2-} ;;
	--core) CORE=${2-} ;;
	--port) PORT=${2-} ;;
	--size) SIZE_MB=${2-} ;;
	--nvmeperf) NVMEPERF=${2-} ;;
	--results) RESULTS=${2-} ;;
	--prefix) PREFIX=${2-} ;;
	--allow-destructive) ALLOW_DESTRUCTIVE=1; shift; continue ;;
	-h | --help) usage; exit 0 ;;
	*) usage_error "unknown argument '$1'" ;;
	esac
	[ $# -ge 2 ] || usage_error "$1 needs a value"
	shift 2
done

[ -n "${EPOCHREALTIME:-}" ] || die "bash 5.0 or newer is needed (\$EPOCHREALTIME)"

# --- input checks ----------------------------------------------------------------------
is_uint() { case $1 in '' | *[!0-9]*) return 1 ;; esac; }
is_uint "$BS" && [ "$BS" -ge 512 ] || usage_error "--bs '$BS': want a whole number of bytes, at least 512"
is_uint "$SECONDS_EACH" && [ "$SECONDS_EACH" -ge 1 ] || usage_error "--seconds '$SECONDS_EACH': want a whole number of seconds, at least 1"
is_uint "$RUNS" && [ "$RUNS" -ge 1 ] || usage_error "--runs '$RUNS': want a whole number, at least 1"
is_uint "$PORT" && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || usage_error "--port '$PORT': want 1-65535"
is_uint "$SIZE_MB" && [ "$SIZE_MB" -ge 16 ] || usage_error "--size '$SIZE_MB': want MiB, at least 16"
[ "$CORE" = none ] || is_uint "$CORE" || usage_error "--core '$CORE': want a CPU number or 'none'"
case $BACKEND in null | file) ;; *) usage_error "--backend '$BACKEND': want null or file" ;; esac
[ -n "$HOSTS" ] || usage_error "--hosts is empty: want kernel, nvmeperf or both"
for h in $HOSTS; do
	case $h in kernel | nvmeperf) ;; *) usage_error "--hosts: unknown host '$h' (kernel, nvmeperf)" ;; esac
done
[ -n "$ROWS" ] || usage_error "--rows is empty"
for r in $ROWS; do
	case ${r%%:*} in read | write | randread | randwrite) ;; *) usage_error "--rows: '$r': the pattern must be read, write, randread or randwrite" ;; esac
	is_uint "${r#*:}" && [ "${r#*:}" -ge 1 ] && [ "${r#*:}" -le 1024 ] || usage_error "--rows: '$r': want PATTERN:QD with QD 1-1024"
done
[ -n "$TARGETS" ] || usage_error "--target is empty"
for t in $TARGETS; do
	case $t in
	serve | nvmet) ;;
	*:*) is_uint "${t##*:}" || usage_error "--target '$t': want serve, nvmet or ADDR:PORT"
		[ -n "$NQN" ] || usage_error "--target $t: an existing target needs --nqn" ;;
	*) usage_error "--target '$t': want serve, nvmet or ADDR:PORT" ;;
	esac
done

has_host() { case " $HOSTS " in *" $1 "*) return 0 ;; esac; return 1; }
has_write_row() { case " $ROWS " in *write:*) return 0 ;; esac; return 1; }

# --- prerequisites ---------------------------------------------------------------------
command -v awk >/dev/null || die "awk is needed to read the JSON reports"
needs_root=0
has_host kernel && needs_root=1
case " $TARGETS " in *" nvmet "*) needs_root=1 ;; esac
if [ "$needs_root" = 1 ] && [ "$(id -u)" != 0 ]; then
	die "must run as root: the kernel host (/dev/nvme-fabrics) and the nvmet target (configfs) need it; --hosts nvmeperf --target serve runs unprivileged"
fi

# need_module NAME PRESENT WHY: PRESENT (a path) exists, loading module NAME with
# modprobe if it does not; dies naming the module and why it is needed otherwise.
need_module() {
	[ -e "$2" ] && return 0
	modprobe "$1" 2>/dev/null
	[ -e "$2" ] || die "kernel module $1 is not available (modprobe $1 failed; $2 missing): $3"
}

if has_host kernel; then
	need_module nvme-fabrics /dev/nvme-fabrics "the kernel host needs nvme-fabrics and nvme-tcp (or run --hosts nvmeperf)"
	need_module nvme-tcp /sys/module/nvme_tcp "the kernel host needs nvme-fabrics and nvme-tcp (or run --hosts nvmeperf)"
	command -v fio >/dev/null || die "fio is not installed: the kernel host is benchmarked with fio (Debian: apt-get install fio)"
	fio --enghelp=io_uring >/dev/null 2>&1 || die "this fio has no io_uring engine (fio $(fio --version 2>/dev/null)); fio 3.13 or newer on Linux 5.1+ is needed"
fi
CFG=/sys/kernel/config
case " $TARGETS " in *" nvmet "*)
	grep -qw configfs /proc/filesystems || modprobe configfs 2>/dev/null
	grep -qw configfs /proc/filesystems || die "the kernel has no configfs (modprobe configfs failed): the nvmet target is configured through it (or use --target serve)"
	grep -q " $CFG configfs " /proc/mounts || mount -t configfs none "$CFG" || die "cannot mount configfs on $CFG"
	need_module nvmet "$CFG/nvmet" "the nvmet target needs nvmet and nvmet-tcp (or use --target serve)"
	need_module nvmet-tcp /sys/module/nvmet_tcp "the nvmet target needs nvmet and nvmet-tcp (or use --target serve)"
	if [ "$BACKEND" = null ]; then
		need_module null_blk /sys/module/null_blk "the nvmet target's null namespace needs null_blk (or --backend file)"
		[ -d "$CFG/nullb" ] || die "null_blk has no configfs directory ($CFG/nullb): this kernel cannot make a null_blk device on demand (use --backend file)"
	fi
	;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/tcp_vs_kernel.XXXXXX") || die "cannot create a temporary directory"

# --- cleanup: every exit path ----------------------------------------------------------
SERVE_PID=""
CTRL=""
NVMET_SUBSYS=""
NVMET_PORT=""
NULLB=""
NVMET_FILE=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	if [ -n "$CTRL" ] && [ -e "/sys/class/nvme/$CTRL/delete_controller" ]; then
		echo 1 >"/sys/class/nvme/$CTRL/delete_controller" 2>/dev/null || note "could not disconnect $CTRL"
	fi
	CTRL=""
	stop_sampler
	if [ -n "$SERVE_PID" ]; then
		kill -INT "$SERVE_PID" 2>/dev/null
		wait "$SERVE_PID" 2>/dev/null
		SERVE_PID=""
	fi
	nvmet_remove
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- the nvmeperf binary ---------------------------------------------------------------
if has_host nvmeperf || case " $TARGETS " in *" serve "*) true ;; *) false ;; esac; then
	if [ -z "$NVMEPERF" ]; then
		here=$(cd "$(dirname "$0")/.." && pwd)
		if [ -f "$here/go.mod" ] && [ -d "$here/cmd/nvmeperf" ] && { command -v go >/dev/null || [ -x /usr/local/go/bin/go ]; }; then
			note "building nvmeperf from $here"
			(cd "$here" && PATH=$PATH:/usr/local/go/bin CGO_ENABLED=0 go build -trimpath -o "$work/nvmeperf" ./cmd/nvmeperf) ||
				die "building nvmeperf failed"
			NVMEPERF=$work/nvmeperf
		else
			NVMEPERF=$(command -v nvmeperf) || die "no nvmeperf: give --nvmeperf PATH or put it in PATH"
		fi
	fi
	[ -x "$NVMEPERF" ] || die "--nvmeperf '$NVMEPERF' is not an executable file"
fi

# --- JSON ------------------------------------------------------------------------------
# jget FILE PATH...: the value at each dotted PATH (array elements by index, e.g.
# jobs.0.read.iops), one line each, empty when absent. Reads the pretty-printed JSON
# fio and nvmeperf write (one key per line): no jq or python needed.
jget() {
	local f=$1
	shift
	awk -v want="$*" '
	function path(k,   i, p) { p = ""; for (i = 1; i <= d; i++) p = p S[i] "."; return p k }
	BEGIN { n = split(want, W, " "); d = 0; root = 0 }
	{
		l = $0; gsub(/^[ \t]+/, "", l); gsub(/[ \t\r]+$/, "", l)
		if (l == "") next
		k = ""
		if (match(l, /^"[^"]*"[ \t]*:/)) {
			k = substr(l, 2, RLENGTH - 1); sub(/"[ \t]*:$/, "", k)
			l = substr(l, RLENGTH + 1); gsub(/^[ \t]+/, "", l)
		} else if (l !~ /^[]}]/ && d > 0 && A[d]) {
			k = I[d]++
		}
		if (l ~ /^[[{][ \t]*[]}],?$/) next            # {} or []
		if (l == "{" || l == "[") {
			if (!root && k == "") { root = 1; next }   # the document itself
			d++; S[d] = k; A[d] = (l == "["); I[d] = 0; next
		}
		if (l ~ /^[]}],?$/) { if (d > 0) d--; next }
		if (k == "") next
		sub(/,$/, "", l); gsub(/^"|"$/, "", l)
		V[path(k)] = l
	}
	END { for (i = 1; i <= n; i++) print V[W[i]] }' "$f"
}

# --- CPU accounting --------------------------------------------------------------------
TICK=$(getconf CLK_TCK 2>/dev/null || echo 100)
# times_seconds FILE: user+sys seconds of all waited-for children of the shell, from
# the output of bash's `times` (getrusage RUSAGE_CHILDREN, millisecond resolution).
# `times` must run in the measuring shell itself, not in $(...): a subshell starts
# from zero.
times_seconds() {
	awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } printf "%.3f\n", s }' "$1"
}
# sampler FILE: every 0.1 s appends "EPOCH BUSY CORE-BUSY" to FILE: the wall clock
# ($EPOCHREALTIME), the clock ticks all CPUs together and the host core (CORE) alone
# spent not idle (/proc/stat: user nice system irq softirq steal). Builtins only, so it
# costs next to nothing; runs in the background while a target is benchmarked. Both
# figures are the kernel's tick accounting, so they agree with each other even in a VM
# whose ticks are late (per-process times are not: they are measured differently).
sampler() {
	local f=$1 line all core sfd=""
	# read -t on a pipe nobody writes is a sleep without a fork.
	exec {sfd}<> <(:) 2>/dev/null || sfd=""
	while :; do
		core=0
		{
			read -r line
			# shellcheck disable=SC2086
			set -- $line
			all=$(($2 + $3 + $4 + $7 + $8 + $9))
			while [ "$CORE" != none ] && read -r line; do
				case $line in "cpu$CORE "*)
					# shellcheck disable=SC2086
					set -- $line
					core=$(($2 + $3 + $4 + $7 + $8 + $9))
					break ;;
				esac
			done
		} </proc/stat
		echo "$EPOCHREALTIME $all $core"
		if [ -n "$sfd" ]; then read -rt 0.1 -u "$sfd" _; else sleep 0.1; fi
	done >>"$f"
}
SAMPLER_PID=""
start_sampler() {
	: >"$work/samples"
	sampler "$work/samples" &
	SAMPLER_PID=$!
}
stop_sampler() {
	[ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null && wait "$SAMPLER_PID" 2>/dev/null
	SAMPLER_PID=""
}
# window START END: "BUSY CORE-BUSY", the CPU seconds all CPUs and the host core spent
# busy between the epoch instants START and END, interpolated between samples.
window() {
	awk -v a="$1" -v b="$2" -v hz="$TICK" '
	function at(x, V,   i) {
		if (x <= T[1]) return V[1]
		for (i = 2; i <= n; i++)
			if (T[i] >= x) return V[i - 1] + (V[i] - V[i - 1]) * (x - T[i - 1]) / (T[i] - T[i - 1])
		return V[n]
	}
	NF == 3 { n++; T[n] = $1; B[n] = $2; P[n] = $3 }
	END {
		if (n < 2 || T[1] > a || T[n] < b) { print "- -"; exit }
		printf "%.4f %.4f\n", (at(b, B) - at(a, B)) / hz, (at(b, P) - at(a, P)) / hz
	}' "$work/samples"
}
# rfc3339_epoch TIME: seconds since the epoch of an RFC 3339 UTC time such as
# 2026-01-02T03:04:05.123456789Z (busybox date cannot parse the fraction itself).
rfc3339_epoch() {
	local t=${1%Z} whole frac
	whole=${t%%.*}
	frac=0
	case $t in *.*) frac=${t#*.} ;; esac
	whole=$(date -u -d "${whole%%T*} ${whole#*T}" +%s) || return 1
	echo "$whole.$frac"
}

# --- targets ---------------------------------------------------------------------------
ADDR=127.0.0.1
TPORT=$PORT
TNQN=""
HOST_CORE_FIGURE=""
# SERVE_CPUS: every online CPU but the host core, where `nvmeperf serve` is pinned so
# that the host core's busy time is the host side's alone; empty (no host core figure)
# when unpinned or on a single CPU.
SERVE_CPUS=""
if [ "$CORE" != none ]; then
	SERVE_CPUS=$(awk -v c="$CORE" '/^cpu[0-9]+ / { n = substr($1, 4); if (n != c) l = l (l == "" ? "" : ",") n } END { print l }' /proc/stat)
	grep -q "^cpu$CORE " /proc/stat || usage_error "--core $CORE: no such online CPU"
fi

start_serve() {
	TNQN=${NQN:-nqn.2026-11.io.nvmeperf:tcp-bench}
	local spin=()
	[ -n "$SERVE_CPUS" ] && spin=(taskset -c "$SERVE_CPUS")
	"${spin[@]}" "$NVMEPERF" serve --listen "$ADDR:$TPORT" --nqn "$TNQN" \
		-r "trtype:sim model:null store:discard mode:inline nssize:${SIZE_MB}m" >"$work/serve.out" 2>"$work/serve.err" &
	SERVE_PID=$!
	local i=0
	while ! grep -q 'connect:' "$work/serve.err" 2>/dev/null; do
		kill -0 "$SERVE_PID" 2>/dev/null || { SERVE_PID=""; die "nvmeperf serve exited: $(tail -n 2 "$work/serve.err" | tr '\n' ' ')"; }
		i=$((i + 1))
		[ "$i" -le 300 ] || die "nvmeperf serve is not listening on $ADDR:$TPORT after 30 s"
		sleep 0.1
	done
	HOST_CORE_FIGURE=${SERVE_CPUS:+1}
	TARGET_DESC="nvmeperf serve, sim null namespace (${SIZE_MB} MiB, store:discard, mode:inline), $ADDR:$TPORT"
}

stop_serve() {
	[ -n "$SERVE_PID" ] || return 0
	kill -INT "$SERVE_PID" 2>/dev/null
	wait "$SERVE_PID" 2>/dev/null
	SERVE_PID="" HOST_CORE_FIGURE=""
	local s
	s=$(grep 'I/O commands' "$work/serve.err" | tail -n 1)
	[ -n "$s" ] && note "serve: $s"
	case $s in *' 0 connections ended by protocol errors'*) ;; *) note "WARNING: nvmeperf serve reported protocol errors: $s" ;; esac
}

# nvmet_remove: undoes whatever start_nvmet made, in reverse order; safe to call twice.
nvmet_remove() {
	if [ -n "$NVMET_PORT" ]; then
		rm -f "$NVMET_PORT/subsystems/$TNQN" 2>/dev/null
		rmdir "$NVMET_PORT" 2>/dev/null || note "could not remove $NVMET_PORT"
		NVMET_PORT=""
	fi
	if [ -n "$NVMET_SUBSYS" ]; then
		[ -e "$NVMET_SUBSYS/namespaces/1/enable" ] && echo 0 >"$NVMET_SUBSYS/namespaces/1/enable" 2>/dev/null
		[ -d "$NVMET_SUBSYS/namespaces/1" ] && rmdir "$NVMET_SUBSYS/namespaces/1" 2>/dev/null
		rmdir "$NVMET_SUBSYS" 2>/dev/null || note "could not remove $NVMET_SUBSYS"
		NVMET_SUBSYS=""
	fi
	if [ -n "$NULLB" ]; then
		echo 0 >"$NULLB/power" 2>/dev/null
		rmdir "$NULLB" 2>/dev/null || note "could not remove $NULLB"
		NULLB=""
	fi
	if [ -n "$NVMET_FILE" ]; then
		rm -f "$NVMET_FILE"
		NVMET_FILE=""
	fi
}

start_nvmet() {
	local dev s p
	TNQN=${NQN:-nqn.2026-11.io.nvmeperf:tcp-bench-nvmet}
	s=$CFG/nvmet/subsystems/$TNQN
	p=$CFG/nvmet/ports/$TPORT
	[ -e "$s" ] && die "nvmet subsystem $TNQN already exists: another run, or a target of yours (give --nqn)"
	[ -e "$p" ] && die "nvmet port $p already exists: another run, or a target of yours (give --port)"
	if [ "$BACKEND" = null ]; then
		NULLB=$CFG/nullb/nvmeperf-tcp-bench
		[ -e "$NULLB" ] && { NULLB=""; die "$CFG/nullb/nvmeperf-tcp-bench already exists: another run?"; }
		mkdir "$NULLB" || { NULLB=""; die "cannot create null_blk device $CFG/nullb/nvmeperf-tcp-bench"; }
		# memory_backed 0: reads and writes move no data, completions at once
		# (irqmode 0): the target's cost is the network and nvmet, not a medium.
		echo "$SIZE_MB" >"$NULLB/size" && echo 4096 >"$NULLB/blocksize" &&
			echo 0 >"$NULLB/irqmode" && echo 1 >"$NULLB/power" || die "configuring null_blk $NULLB"
		# The disk is nullbINDEX, or on newer kernels named after the configfs directory.
		local i=0 idx
		idx=$(cat "$NULLB/index")
		dev=""
		while [ -z "$dev" ]; do
			for d in "/dev/nullb$idx" "/dev/$(basename "$NULLB")"; do
				[ -b "$d" ] && dev=$d
			done
			i=$((i + 1))
			[ "$i" -le 100 ] || die "the null_blk device (index $idx) did not appear as /dev/nullb$idx or /dev/$(basename "$NULLB")"
			[ -n "$dev" ] || sleep 0.1
		done
		TARGET_DESC="kernel nvmet-tcp, null_blk namespace ($dev, ${SIZE_MB} MiB), $ADDR:$TPORT"
	else
		NVMET_FILE=$work/nvmet.img
		dd if=/dev/zero of="$NVMET_FILE" bs=1M count="$SIZE_MB" 2>/dev/null || die "cannot create the ${SIZE_MB} MiB backing file $NVMET_FILE"
		dev=$NVMET_FILE
		TARGET_DESC="kernel nvmet-tcp, file namespace (${SIZE_MB} MiB, buffered), $ADDR:$TPORT"
	fi
	mkdir "$s" || die "cannot create nvmet subsystem $s"
	NVMET_SUBSYS=$s
	echo 1 >"$s/attr_allow_any_host" || die "nvmet: attr_allow_any_host"
	mkdir "$s/namespaces/1" || die "nvmet: cannot create namespace 1"
	echo -n "$dev" >"$s/namespaces/1/device_path" || die "nvmet: device_path $dev"
	if [ "$BACKEND" = file ] && [ -e "$s/namespaces/1/buffered_io" ]; then
		echo 1 >"$s/namespaces/1/buffered_io" || die "nvmet: buffered_io"
	fi
	echo 1 >"$s/namespaces/1/enable" || die "nvmet: enabling namespace 1 ($dev): $(dmesg 2>/dev/null | tail -n 1)"
	mkdir "$p" || die "nvmet: cannot create port $p"
	NVMET_PORT=$p
	{ echo tcp >"$p/addr_trtype" && echo ipv4 >"$p/addr_adrfam" && echo "$ADDR" >"$p/addr_traddr" &&
		echo "$TPORT" >"$p/addr_trsvcid"; } || die "nvmet: configuring port $p"
	ln -s "$s" "$p/subsystems/$TNQN" || die "nvmet: linking $TNQN to port $TPORT: $(dmesg 2>/dev/null | tail -n 1)"
	HOST_CORE_FIGURE=""
}

# --- the kernel host -------------------------------------------------------------------
KERNEL_HOSTNQN=nqn.2014-08.org.nvmexpress:uuid:6e766d65-7065-7266-2d6b-65726e656c30
NVMEPERF_HOSTNQN=nqn.2014-08.org.nvmexpress:uuid:6e766d65-7065-7266-2d6e-766d65706572
BLK=""

kernel_connect() {
	local opts="transport=tcp,traddr=$ADDR,trsvcid=$TPORT,nqn=$TNQN,hostnqn=$KERNEL_HOSTNQN"
	local c e i=0 before
	before=$(ls /sys/class/nvme 2>/dev/null | tr '\n' ' ')
	echo "$opts" >/dev/nvme-fabrics || die "the kernel refused the connect string '$opts': $(dmesg 2>/dev/null | tail -n 2 | tr '\n' ' ')"
	CTRL="" BLK=""
	while [ -z "$BLK" ]; do
		for c in /sys/class/nvme/nvme*; do
			[ -e "$c" ] || continue
			[ "$(cat "$c/transport" 2>/dev/null)" = tcp ] || continue
			[ "$(cat "$c/subsysnqn" 2>/dev/null)" = "$TNQN" ] || continue
			[ "$(cat "$c/hostnqn" 2>/dev/null)" = "$KERNEL_HOSTNQN" ] || continue
			case " $before " in *" $(basename "$c") "*) continue ;; esac
			CTRL=$(basename "$c")
			for e in "$c"/nvme*; do
				e=$(basename "$e" | sed -E 's/^nvme([0-9]+)c[0-9]+n([0-9]+)$/nvme\1n\2/')
				case $e in nvme*n*) [ -b "/dev/$e" ] && BLK=/dev/$e && break ;; esac
			done
		done
		i=$((i + 1))
		[ "$i" -le 300 ] || die "no block device for $TNQN 30 s after connecting (controller '${CTRL:-none}'): $(dmesg 2>/dev/null | tail -n 2 | tr '\n' ' ')"
		[ -n "$BLK" ] || sleep 0.1
	done
	note "kernel host: controller $CTRL, block device $BLK"
}

kernel_disconnect() {
	[ -n "$CTRL" ] || return 0
	echo 1 >"/sys/class/nvme/$CTRL/delete_controller" || note "could not disconnect $CTRL"
	CTRL=""
}

# --- one run ---------------------------------------------------------------------------
# Each run prints "IOPS SELF PROCESS SYSTEM HOST" (CPU figures in microseconds per I/O,
# "-" where not measured) or fails.
pin=()
[ "$CORE" = none ] || pin=(taskset -c "$CORE")

# measure FILE-PREFIX CMD...: runs CMD, recording the user+sys seconds of its whole
# process tree in FILE-PREFIX.cpu.
measure() {
	local out=$1 rc
	shift
	times >"$out.times0"
	"$@" >"$out.stdout" 2>"$out.stderr"
	rc=$?
	times >"$out.times1"
	awk -v a="$(times_seconds "$out.times0")" -v b="$(times_seconds "$out.times1")" 'BEGIN { printf "%.3f\n", b - a }' >"$out.cpu"
	# a sample after the measured phase, for window
	read -rt 0.25 _ <> <(:) 2>/dev/null || sleep 0.25
	return $rc
}

# per_io IOS IOPS SELF_US START END: the line a run prints: IOPS, then microseconds per
# I/O: the tool's own figure, its process tree ($out.cpu), all CPUs busy and the host
# core busy over START..END (the tool's measured phase, epoch seconds). The host core
# figure only when the target's CPU is kept off that core (SERVE_CPUS).
per_io() {
	local w
	w=$(window "$4" "$5")
	awk -v ios="$1" -v iops="$2" -v self="$3" -v w="$w" -v core="$HOST_CORE_FIGURE" '{
		if (ios <= 0) { print "0 - - - -"; exit }
		split(w, W, " ")
		sys = W[1] == "-" ? "-" : sprintf("%.3f", W[1] * 1e6 / ios)
		host = (W[1] == "-" || !core) ? "-" : sprintf("%.3f", W[2] * 1e6 / ios)
		printf "%.0f %s %.3f %s %s\n", iops, self, $1 * 1e6 / ios, sys, host }' "$out.cpu"
}

run_kernel() { # pattern qd run
	out=$work/fio-$1-$2-$3
	local cpus=()
	[ "$CORE" = none ] || cpus=(--cpus_allowed="$CORE")
	measure "$out" fio --name=tcpbench --filename="$BLK" --ioengine=io_uring --direct=1 \
		--rw="$1" --bs="$BS" --iodepth="$2" --numjobs=1 --time_based --runtime="$SECONDS_EACH" \
		--norandommap --randrepeat=0 "${cpus[@]}" --output-format=json --output="$out.json" ||
		die "fio $1 QD$2 on $BLK failed: $(tail -n 2 "$out.stderr" | tr '\n' ' ')"
	local v
	v=$(jget "$out.json" jobs.0.error jobs.0.read.total_ios jobs.0.write.total_ios jobs.0.read.iops \
		jobs.0.write.iops jobs.0.usr_cpu jobs.0.sys_cpu jobs.0.job_runtime timestamp_ms | tr '\n' ' ')
	# shellcheck disable=SC2086
	set -- $v
	[ $# -eq 9 ] || die "fio's JSON report $out.json lacks a field (got '$v')"
	[ "$1" = 0 ] || die "fio reported error $1 on $BLK"
	# usr_cpu and sys_cpu are percentages of one CPU over job_runtime (ms); fio reports
	# when the job ends (timestamp_ms), so the measured phase is the job_runtime before.
	awk -v r="$2" -v w="$3" -v ri="$4" -v wi="$5" -v u="$6" -v s="$7" -v ms="$8" -v end="$9" 'BEGIN {
		ios = r + w
		printf "%d %.3f %s %.3f %.3f\n", ios, ri + wi, ios ? sprintf("%.3f", (u + s) / 100 * ms / 1000 * 1e6 / ios) : "-",
			(end - ms) / 1000, end / 1000 }' >"$out.sum"
	read -r ios iops self t0 t1 <"$out.sum"
	per_io "$ios" "$iops" "$self" "$t0" "$t1"
}

run_nvmeperf() { # pattern qd run
	out=$work/nvmeperf-$1-$2-$3
	local cores=()
	[ "$CORE" = none ] || cores=(-c "[$CORE]")
	measure "$out" "${pin[@]}" "$NVMEPERF" -q "$2" -o "$BS" -w "$1" -t "$SECONDS_EACH" "${cores[@]}" --quiet \
		-r "trtype:TCP adrfam:IPv4 traddr:$ADDR trsvcid:$TPORT subnqn:$TNQN hostnqn:$NVMEPERF_HOSTNQN" \
		--output-format json --output "$out.json" ||
		die "nvmeperf $1 QD$2 against $ADDR:$TPORT failed: $(tail -n 2 "$out.stderr" | tr '\n' ' ')"
	local v
	v=$(jget "$out.json" status total.all.ios total.all.iops total.cpu.ns_per_io start_time duration_seconds | tr '\n' ' ')
	# shellcheck disable=SC2086
	set -- $v
	[ $# -eq 6 ] || die "nvmeperf's JSON report $out.json lacks a field (got '$v')"
	[ "$1" = ok ] || die "nvmeperf $1 QD$2: status $1"
	local t0
	t0=$(rfc3339_epoch "$5") || die "nvmeperf's start_time '$5' is not RFC 3339"
	per_io "$2" "$3" "$(awk -v n="$4" 'BEGIN { printf "%.3f", n / 1000 }')" "$t0" "$(awk -v a="$t0" -v d="$6" 'BEGIN { printf "%.6f", a + d }')"
}

# best HOST PATTERN QD: best of RUNS by IOPS.
best() {
	local host=$1 best="" line i
	for i in $(seq 1 "$RUNS"); do
		line=$("run_$host" "$2" "$3" "$i") || exit 1
		if [ -z "$best" ] || awk -v a="${line%% *}" -v b="${best%% *}" 'BEGIN { exit !(a > b) }'; then
			best=$line
		fi
	done
	echo "$best"
}

# --- the table -------------------------------------------------------------------------
row() { printf '%s%-6s %-14s %-9s %10s %9s %9s %9s %9s\n' "$PREFIX" "$@"; }

bench_target() {
	local t=$1 r pat qd k n
	case $t in
	serve) TPORT=$PORT; start_serve ;;
	nvmet) TPORT=$PORT; start_nvmet ;;
	*) ADDR=${t%:*} TPORT=${t##*:} TNQN=$NQN HOST_CORE_FIGURE="" TARGET_DESC="existing target $ADDR:$TPORT" ;;
	esac
	echo "${PREFIX}target $t: $TARGET_DESC, $TNQN"
	start_sampler
	has_host kernel && kernel_connect
	for r in $ROWS; do
		pat=${r%%:*} qd=${r#*:}
		case $t in serve | nvmet) ;; *)
			case $pat in *write*) [ "$ALLOW_DESTRUCTIVE" = 1 ] || { note "skipping $r on $t: writes overwrite its namespace; give --allow-destructive"; continue; } ;; esac ;;
		esac
		k="" n=""
		if has_host kernel; then
			k=$(best kernel "$pat" "$qd") || exit 1
			# shellcheck disable=SC2086
			row "$t" "$pat QD$qd" kernel $k
			[ -n "$RESULTS" ] && printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$pat" "$qd" kernel "$(echo "$k" | tr ' ' '\t')" >>"$RESULTS"
		fi
		if has_host nvmeperf; then
			n=$(best nvmeperf "$pat" "$qd") || exit 1
			# shellcheck disable=SC2086
			row "$t" "$pat QD$qd" nvmeperf $n
			[ -n "$RESULTS" ] && printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$pat" "$qd" nvmeperf "$(echo "$n" | tr ' ' '\t')" >>"$RESULTS"
		fi
		if [ -n "$k" ] && [ -n "$n" ]; then
			# shellcheck disable=SC2086
			awk -v k="$k" -v n="$n" 'function r(a, b) { return (a != "-" && b != "-" && b > 0) ? sprintf("%.2fx", a / b) : "-" }
			BEGIN { split(k, K, " "); split(n, N, " ")
				printf "%s %s %s %s %s\n", r(N[1], K[1]), r(N[2], K[2]), r(N[3], K[3]), r(N[4], K[4]), r(N[5], K[5]) }' >"$work/ratio"
			# shellcheck disable=SC2046
			row "" "" "ratio" $(cat "$work/ratio")
		fi
	done
	stop_sampler
	has_host kernel && kernel_disconnect
	case $t in
	serve) stop_serve ;;
	nvmet) nvmet_remove ;;
	esac
	ADDR=127.0.0.1
}

note "$SECONDS_EACH s per run, best of $RUNS by IOPS, ${BS}-byte I/O, hosts: $HOSTS, pinned to core $CORE"
echo "${PREFIX}CPU per I/O in microseconds: self = the tool's own figure (fio job usr+sys; nvmeperf worker threads),"
echo "${PREFIX}process = the tool's process tree (getrusage, start-up included), system = all CPUs busy in the measured"
echo "${PREFIX}phase (/proc/stat, target included), host = the host core busy (serve target, pinned elsewhere). ratio = nvmeperf / kernel."
row target workload host IOPS self process system host
[ -n "$RESULTS" ] && printf 'target\tpattern\tqd\thost\tiops\tself_us\tprocess_us\tsystem_us\thost_us\n' >"$RESULTS"
for t in $TARGETS; do
	bench_target "$t"
done
