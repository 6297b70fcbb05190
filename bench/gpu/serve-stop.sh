#!/usr/bin/env bash
# `arbor serve --cuda 0` answers a completion, then exits 0 on SIGTERM
# between steps (no segmentation fault, no ONNX Runtime error at exit).
# Needs only `arbor` in .gpu-run/bins.tar.xz; same first call as device.sh.
source "$(dirname "$0")/prelude.sh"
rm -rf /tmp/d; KEY=$(arbor tenant create t --data /tmp/d | tail -1)
arbor serve --model $M/l1b --cuda 0 --data /tmp/d --listen 127.0.0.1:8080 2> /tmp/serve.err &
P=$!
for _ in $(seq 120); do curl -sf 127.0.0.1:8080/readyz >/dev/null && break; sleep 0.5; done
for i in 1 2 3; do
  curl -s -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d '{"model":"l1b","prompt":"hello","max_tokens":16}' 127.0.0.1:8080/v1/completions | head -c 160; echo
done
# A stop while requests are in flight: the scheduler must finish its step first.
for i in $(seq 8); do
  curl -s -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d '{"model":"l1b","prompt":"hello","max_tokens":200}' 127.0.0.1:8080/v1/completions >/dev/null &
done
sleep 0.3
kill -TERM $P; wait $P; echo "serve exit $?"
tail -5 /tmp/serve.err
