#!/bin/sh
# Writes the credentials kustomization.yaml's secretGenerator reads, once:
#   store.env    RUSTFS_ACCESS_KEY / RUSTFS_SECRET_KEY (the object store's root key pair,
#                also the S3 key pair of the functions, web app and event source)
#   webhook.env  EVENT_WEBHOOK_TOKEN (the store signs its bucket notifications with it,
#                the event source refuses notifications without it)
#   webapp.env   STORAGE_SECRET (signs the web app's browser storage)
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
