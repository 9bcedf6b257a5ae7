#!/bin/sh
# Runs inside `unshare --uts --mount --propagation private` (see mta.py, Sendmail.start):
# gives Sendmail a fully qualified hostname (otherwise it sleeps 60 s at start), its own
# /etc/hosts and nsswitch.conf (hosts: files, no DNS), and a private /dev whose /dev/log is
# the e2e syslog receiver's socket. Nothing outside this mount namespace changes.
# usage: sendmail-ns.sh DIR FQDN SENDMAIL_BINARY SENDMAIL_CF
set -eu
d=$1 fqdn=$2 bin=$3 cf=$4
hostname "$fqdn"
mount --bind "$d/hosts" /etc/hosts
mount --bind "$d/nsswitch.conf" /etc/nsswitch.conf
nd="$d/ns-dev"
mkdir -p "$nd"
mount -t tmpfs -o mode=755 tmpfs "$nd"
for n in null zero full random urandom tty; do
    if [ -e "/dev/$n" ]; then
        touch "$nd/$n"
        mount --bind "/dev/$n" "$nd/$n"
    fi
done
touch "$nd/log"
mount --bind "$d/log.sock" "$nd/log"
ln -s /proc/self/fd "$nd/fd"
mount --move "$nd" /dev
# -bd: SMTP daemon (forks into the background, still inside this namespace)
exec "$bin" -C "$cf" -bd
