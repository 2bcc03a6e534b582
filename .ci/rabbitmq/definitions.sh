#!/bin/sh
# Prints RabbitMQ definitions: one passwordless user per device CN with full permissions on
# vhost "/" (SASL EXTERNAL needs the user to exist). The file $1 is `fleetbench pki registry`'s
# output (one JSON object per device, its "id" is the CN) or a list of CNs, one a line.
set -eu
cns="${1:?usage: definitions.sh REGISTRY}"
users=""
perms=""
while IFS= read -r cn || [ -n "$cn" ]; do
    [ -z "$cn" ] && continue
    case "$cn" in *[!A-Za-z0-9._:-]*) echo "definitions.sh: unsupported character in CN '$cn'" >&2; exit 2;; esac
    users="$users${users:+,}{\"name\":\"$cn\",\"password_hash\":\"\",\"hashing_algorithm\":\"rabbit_password_hashing_sha256\",\"tags\":[]}"
    perms="$perms${perms:+,}{\"user\":\"$cn\",\"vhost\":\"/\",\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\"}"
done <<EOF
$(sed -e 's/^[[:space:]]*{.*"id"[[:space:]]*:[[:space:]]*"\([^"]*\)".*$/\1/' "$cns")
EOF
printf '{"vhosts":[{"name":"/"}],"users":[%s],"permissions":[%s]}\n' "$users" "$perms"
