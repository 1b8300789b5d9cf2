#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Certificates for the fake apiserver: mkcerts.sh DIR
#   DIR/ca.pem DIR/ca.key          the cluster CA (signs the serving certificates)
#   DIR/server.pem DIR/server.key  one serving cert shared by every instance, shaped like
#                                  RKE1's: DNS kubernetes, kubernetes.default(.svc), IPs
#                                  127.0.0.1 and every control-plane address (10.213.0.2-9)
#   DIR/client-ca.pem              CA for client certificates
# Per-apiserver certificates, as kubeadm and k3s issue them (each apiserver its own, naming
# only its own address): mkcerts.sh DIR apiservers kubeadm|k3s IP...  ->
#   DIR/apiserver-IP.pem DIR/apiserver-IP.key, signed by DIR/ca.pem (run the first form first).
#   kubeadm: DNS kubernetes, kubernetes.default, kubernetes.default.svc,
#            kubernetes.default.svc.cluster.local, the node name (cp-A-B-C-D), IP 10.96.0.1
#            (the service IP) and IP (its advertise address); nothing else.
#   k3s:     the same names plus DNS localhost and IP 127.0.0.1.
#   EXTRA_SANS=DNS:x,IP:y adds names to each (e.g. certSANs, controlPlaneEndpoint).
# Any other leaf signed by the cluster CA: mkcerts.sh DIR leaf NAME SAN[,SAN...]  ->
#   DIR/NAME.pem DIR/NAME.key (e.g. a certificate naming neither kubernetes nor the address).
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
# leaf CA_NAME NAME SANS: an apiserver certificate NAME.pem for SANS, signed by CA_NAME.pem.
leaf() {
    printf 'subjectAltName=%s\n' "$3" >"$2.ext"
    openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout "$2.key" \
        -out "$2.csr" 2>/dev/null
    openssl x509 -req -in "$2.csr" -CA "$1.pem" -CAkey "$1.key" -CAcreateserial -days 1 \
        -extfile "$2.ext" -out "$2.pem" 2>/dev/null
    rm -f "$2.csr" "$2.ext"
}
# serving CA_NAME SERVER_NAME: a CA and the shared apiserver certificate it signs.
serving() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=fake-cluster-$1" \
        -keyout "$1.key" -out "$1.pem" 2>/dev/null
    sans="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1"
    for i in 2 3 4 5 6 7 8 9; do sans="$sans,IP:10.213.0.$i"; done
    leaf "$1" "$2" "$sans"
}
case "${2:-}" in
rotate)
    serving ca2 server2
    ;;
apiservers)
    shape=$3
    shift 3
    for ip in "$@"; do
        sans="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
        sans="$sans,DNS:kubernetes.default.svc.cluster.local,DNS:cp-${ip//[.:]/-}"
        sans="$sans,IP:10.96.0.1,IP:$ip"
        case $shape in
        kubeadm) ;;
        k3s) sans="$sans,DNS:localhost,IP:127.0.0.1" ;;
        *) echo "mkcerts.sh: unknown certificate shape '$shape' (kubeadm or k3s)" >&2; exit 2 ;;
        esac
        if [ -n "${EXTRA_SANS:-}" ]; then sans="$sans,$EXTRA_SANS"; fi
        leaf ca "apiserver-$ip" "$sans"
    done
    ;;
leaf)
    leaf ca "$3" "$4"
    ;;
"")
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=fake-client-ca \
        -keyout client-ca.key -out client-ca.pem 2>/dev/null
    serving ca server
    ;;
*)
    echo "mkcerts.sh: unknown mode '$2' (rotate, apiservers, leaf, client)" >&2
    exit 2
    ;;
esac
