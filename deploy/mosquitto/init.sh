#!/bin/sh
# Run once before the broker starts (compose service "broker-init", as root): create the
# dynamic-security file holding the broker admin account (or refresh that account's hash;
# other clients are kept), and a TLS certificate for the TLS listener, kept when present,
# so an operator may put a real certificate (ca.crt, server.crt, server.key) into the
# volume instead of the self-signed one.
set -eu

dir=${MOSQUITTO_SECURITY_DIR:-/mosquitto/security}
owner=${MOSQUITTO_UID:-1883}
: "${KCITY_MQTT_ADMIN_USERNAME:?set KCITY_MQTT_ADMIN_USERNAME}"
: "${KCITY_MQTT_ADMIN_PASSWORD:?set KCITY_MQTT_ADMIN_PASSWORD}"

mkdir -p "$dir/certs"
# Passwords from the environment, never on a command line; the file is created 0600.
"${KCITY_PYTHON:-python}" "$(dirname "$0")/init_security.py" "$dir/dynamic-security.json"

certs=$dir/certs
if [ ! -s "$certs/server.crt" ]; then
    host=${MQTT_TLS_HOSTNAME:-localhost}
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=K-City pilot CA" \
        -keyout "$certs/ca.key" -out "$certs/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$host" \
        -keyout "$certs/server.key" -out "$certs/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:%s,DNS:mosquitto,DNS:localhost,IP:127.0.0.1\n' "$host" \
        > "$certs/san.ext"
    openssl x509 -req -in "$certs/server.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" \
        -CAcreateserial -days 825 -extfile "$certs/san.ext" -out "$certs/server.crt" 2>/dev/null
    rm -f "$certs/server.csr" "$certs/san.ext"
    echo "broker-init: self-signed TLS certificate for $host (give devices certs/ca.crt)"
fi

chown -R "$owner:$owner" "$dir"
chmod 700 "$dir"
chmod 600 "$dir/dynamic-security.json" "$certs/server.key"
[ ! -f "$certs/ca.key" ] || chmod 600 "$certs/ca.key"
