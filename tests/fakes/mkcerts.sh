#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Certificates for the fake apiserver: mkcerts.sh DIR
#   DIR/ca.pem DIR/ca.key          the cluster CA (signs the serving certificate)
#   DIR/server.pem DIR/server.key  serving cert: DNS kubernetes, kubernetes.default.svc,
#                                  IPs 127.0.0.1 and 10.213.0.2-9
#   DIR/client-ca.pem              CA for client certificates
# A rotated cluster CA: mkcerts.sh DIR rotate  ->  DIR/ca2.pem DIR/server2.pem DIR/server2.key
#                                  (same names as server.pem, signed by a new CA)
# Client certificates: mkcerts.sh DIR client NAME  ->  DIR/NAME.pem (cert + key in one file,
# like kubelet-client-current.pem) and prints its serial number.
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
if [ "${2:-}" = client ]; then
    name=$3
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:nodes/CN=system:node:$name" \
        -keyout "$name.key" -out "$name.csr" 2>/dev/null
    openssl x509 -req -in "$name.csr" -CA client-ca.pem -CAkey client-ca.key -CAcreateserial \
        -days 1 -out "$name.crt" 2>/dev/null
    cat "$name.crt" "$name.key" >"$name.pem"
    rm -f "$name.csr" "$name.crt" "$name.key"
    openssl x509 -in "$name.pem" -noout -serial | cut -d= -f2
    exit 0
fi
# serving CA_NAME SERVER_NAME: a CA and an apiserver certificate it signs.
serving() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=fake-cluster-$1" \
        -keyout "$1.key" -out "$1.pem" 2>/dev/null
    sans="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1"
    for i in 2 3 4 5 6 7 8 9; do sans="$sans,IP:10.213.0.$i"; done
    printf 'subjectAltName=%s\n' "$sans" >san.ext
    openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout "$2.key" \
        -out "$2.csr" 2>/dev/null
    openssl x509 -req -in "$2.csr" -CA "$1.pem" -CAkey "$1.key" -CAcreateserial -days 1 \
        -extfile san.ext -out "$2.pem" 2>/dev/null
    rm -f "$2.csr" san.ext
}
if [ "${2:-}" = rotate ]; then
    serving ca2 server2
    exit 0
fi
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=fake-client-ca \
    -keyout client-ca.key -out client-ca.pem 2>/dev/null
serving ca server
