#!/bin/sh
# Prints RabbitMQ definitions: one passwordless user per device CN (read from the file $1, one
# a line) with full permissions on vhost "/". SASL EXTERNAL needs the user to exist.
set -eu
cns="${1:?usage: definitions.sh CN_FILE}"
users=""
perms=""
while IFS= read -r cn || [ -n "$cn" ]; do
    [ -z "$cn" ] && continue
    case "$cn" in *[!A-Za-z0-9._:-]*) echo "definitions.sh: unsupported character in CN '$cn'" >&2; exit 2;; esac
    users="$users${users:+,}{\"name\":\"$cn\",\"password_hash\":\"\",\"hashing_algorithm\":\"rabbit_password_hashing_sha256\",\"tags\":[]}"
    perms="$perms${perms:+,}{\"user\":\"$cn\",\"vhost\":\"/\",\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\"}"
done < "$cns"
printf '{"vhosts":[{"name":"/"}],"users":[%s],"permissions":[%s]}\n' "$users" "$perms"
