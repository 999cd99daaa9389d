#!/bin/sh
# Installs shipper on a node as a systemd service, or removes it.
#
#   install.sh [install] [--binary PATH] [--root DIR] [--no-start]
#   install.sh uninstall [--root DIR] [--purge] [--no-start]
#
# install: the binary to /usr/local/bin/shipper, the unit to /etc/systemd/system/shipper.service (a
# newer one replaces it: customise with `systemctl edit shipper`), the example config to
# /etc/shipper/shipper.yaml only when there is none (yours is never overwritten), and
# /var/lib/shipper (positions, 0700), once `shipper check` passed on the config. Then, when --root is
# / and without --no-start, systemd (re)starts the service. Running it again upgrades in place.
# uninstall: stops and removes the service and the binary; the config and the positions stay unless
# --purge. --root DIR installs into DIR instead of / (for images and tests) and never touches systemd.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
mode=install
binary=
root=/
start=yes
purge=no

die() {
    echo "install.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '4,5p' "$0" | sed 's/^# *//'
}

while [ $# -gt 0 ]; do
    case $1 in
    install | uninstall) mode=$1 ;;
    --binary) [ $# -ge 2 ] || die "--binary needs a path"; binary=$2; shift ;;
    --binary=*) binary=${1#*=} ;;
    --root) [ $# -ge 2 ] || die "--root needs a directory"; root=$2; shift ;;
    --root=*) root=${1#*=} ;;
    --no-start) start=no ;;
    --purge) purge=yes ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
    esac
    shift
done

[ -d "$root" ] || die "--root $root is not a directory: create it first"
root=$(cd "$root" && pwd)
prefix=${root%/}
bin=$prefix/usr/local/bin/shipper
unit=$prefix/etc/systemd/system/shipper.service
config=$prefix/etc/shipper/shipper.yaml
state=$prefix/var/lib/shipper

# systemd is touched only for the real root, and only when it runs (it is PID 1 of this system).
systemd=no
if [ "$root" = / ] && [ "$start" = yes ]; then
    [ "$(id -u)" = 0 ] || die "installing into / needs root: run it with sudo (or use --root DIR)"
    [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 ||
        die "systemd is not running on this system: pass --no-start (and run $bin yourself)"
    systemd=yes
fi

if [ "$mode" = uninstall ]; then
    if [ "$systemd" = yes ]; then
        systemctl disable --now shipper.service || true
    fi
    rm -f "$bin" "$unit"
    [ "$systemd" = no ] || systemctl daemon-reload
    if [ "$purge" = yes ]; then
        rm -rf "$prefix/etc/shipper" "$state"
        echo "removed shipper, its config and its positions"
    else
        echo "removed shipper; kept $config and $state (uninstall --purge removes them)"
    fi
    exit 0
fi

[ -n "$binary" ] || binary=$here/../../target/release/shipper
[ -f "$binary" ] && [ -x "$binary" ] ||
    die "no executable shipper binary at $binary: build it (cargo build --release -p shipper) or pass --binary PATH"
for f in shipper.service shipper.yaml; do
    [ -f "$here/$f" ] || die "$here/$f is missing: run install.sh from its directory in the shipper sources"
done

# The config that will be used (yours, else the example), checked by the new binary before anything
# is changed: a failed check leaves the installed service as it was.
used=$config
[ -e "$config" ] || used=$here/shipper.yaml
# NODE_NAME as the unit sets it (Environment=NODE_NAME=%H).
if ! NODE_NAME=$(uname -n) "$binary" check --config "$used" >/dev/null; then
    die "$used is not a valid shipper config (the message above says which key): fix it and run install.sh again"
fi

# Directories that exist keep their mode, but the state directory's is always 0700.
for d in "$prefix/usr/local/bin" "$prefix/etc/systemd/system" "$prefix/etc/shipper" "$prefix/var/lib"; do
    [ -d "$d" ] || install -d -m 0755 "$d"
done
install -d -m 0700 "$state"
# A new file renamed over the old one: a running agent keeps its binary until it restarts.
install -m 0755 "$binary" "$bin.new"
mv -f "$bin.new" "$bin"
install -m 0644 "$here/shipper.service" "$unit"
if [ -e "$config" ]; then
    echo "keeping the existing $config (the example is $here/shipper.yaml)"
else
    install -m 0640 "$here/shipper.yaml" "$config"
    echo "installed the example config $config: set client.url to your Loki"
fi

if [ "$systemd" = yes ]; then
    systemctl daemon-reload
    systemctl enable shipper.service
    # restart, not start: an upgrade must run the new binary and unit.
    systemctl restart shipper.service || die "shipper did not start: journalctl -u shipper says why"
    echo "shipper is running: systemctl status shipper; journalctl -u shipper -f"
elif [ "$root" = / ]; then
    [ ! -d /run/systemd/system ] || systemctl daemon-reload
    echo "installed; start it with: systemctl enable --now shipper"
else
    echo "installed into $root (systemd not touched)"
fi
