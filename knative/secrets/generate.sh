#!/bin/sh
# Writes the credentials kustomization.yaml's secretGenerator reads, once:
#   store.env    RUSTFS_ACCESS_KEY / RUSTFS_SECRET_KEY (the object store's root key pair,
#                also the S3 key pair of the functions, web app and event source)
#   webhook.env  EVENT_WEBHOOK_TOKEN (the store signs its bucket notifications with it,
#                the event source refuses notifications without it)
#   webapp.env   STORAGE_SECRET (signs the web app's browser storage)
#   accounts     the web app's sign-in accounts (WEB_ACCOUNTS_FILE), one line per
#                person made by `bloodcell user add`: a first account, $WEBAPP_ADMIN
#                (default `admin`, role reviewer), with a random password written
#                to admin-password.txt for you to read once and delete. Add people
#                with `bloodcell user add NAME >> knative/secrets/accounts`.
# `bloodcell` must be on PATH (README: `.nox/serve/bin/bloodcell`), or name it in
# $BLOODCELL (a command line, e.g. "python3 -m bloodcell.cli").
# Existing files are kept, so re-running is harmless. To rotate, delete a file,
# run this again, `kubectl apply -k knative/` and restart what reads it.
# The files are git-ignored (secrets/.gitignore): nothing here is committed.
set -eu
cd "$(dirname "$0")"
umask 077

random_hex() {
  # $1 bytes of the kernel's CSPRNG, as hex.
  head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'
}

write_once() {
  file=$1
  shift
  if [ -s "$file" ]; then
    echo "keeping $file"
    return
  fi
  printf '%s\n' "$@" > "$file"
  echo "wrote $file"
}

write_once store.env "RUSTFS_ACCESS_KEY=bloodcell-$(random_hex 6)" "RUSTFS_SECRET_KEY=$(random_hex 24)"
write_once webhook.env "EVENT_WEBHOOK_TOKEN=$(random_hex 24)"
write_once webapp.env "STORAGE_SECRET=$(random_hex 32)"

# The web app listens beyond loopback in the cluster, so it refuses to start
# without accounts: make the first one now, from a random password.
if [ -s accounts ]; then
  echo "keeping accounts"
else
  admin=${WEBAPP_ADMIN:-admin}
  password=$(random_hex 12)
  # shellcheck disable=SC2086 # $BLOODCELL may be a command with arguments
  if ! line=$(printf '%s\n' "$password" | ${BLOODCELL:-bloodcell} user add "$admin" --role reviewer); then
    echo "generate.sh: could not run \`${BLOODCELL:-bloodcell} user add\`: put bloodcell on PATH or set BLOODCELL" >&2
    exit 1
  fi
  printf '%s\n' "$line" > accounts
  printf '%s\n' "$password" > admin-password.txt
  echo "wrote accounts: sign in as '$admin' with the password in $(pwd)/admin-password.txt, then delete that file"
fi
