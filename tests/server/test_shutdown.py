"""`arbor serve` stops the scheduler between two steps: SIGTERM while program
runs and streamed completions keep the model busy ends the process with
status 0 and without ONNX Runtime complaining that it was torn down in the
middle of a forward pass (issue 12). The run in flight is left for the next
start, and its stream ends with `stopped`."""

import signal
import threading

import httpx

from conftest import MODEL, Server, guest

ORT_COMPLAINTS = ("onnxruntime", "Non-zero status", "GetElementType")


def stream_until_text(url, key, path, body, marker, got_text, seen):
    """POSTs a streamed request, sets `got_text` at its first line that
    starts with `marker` and reads on to the end, keeping the SSE event
    names in `seen`. `got_text` is also set when the connection ends, so
    nobody waits on a request that failed: the test then fails on what the
    server printed."""
    try:
        with httpx.stream("POST", url + path, json=body, timeout=60,
                          headers={"Authorization": f"Bearer {key}"}) as r:
            for line in r.iter_lines():
                if line.startswith("event: "):
                    seen.append(line[7:])
                if line.startswith(marker):
                    got_text.set()
    except httpx.HTTPError:
        pass
    got_text.set()


def busy(url, key, program):
    """A streamed run that generates until stopped and a streamed
    completion; the events are set once each has produced text, and the
    lists get each stream's SSE event names."""
    work = [(f"/v1/programs/{program}/runs", {"input": "tokens 1000", "stream": True}, "event: text"),
            ("/v1/completions", {"model": MODEL, "prompt": "Once", "max_tokens": 200, "stream": True}, "data:")]
    events = [threading.Event() for _ in work]
    seen = [[] for _ in work]
    threads = [threading.Thread(target=stream_until_text, args=(url, key, path, body, marker, ev, names))
               for (path, body, marker), ev, names in zip(work, events, seen)]
    for t in threads:
        t.start()
    return threads, events, seen


def test_sigterm_mid_work_exits_cleanly_between_steps():
    s = Server()
    key = s.tenant("stopper")
    try:
        for attempt in range(10):
            s.start()
            up = httpx.post(f"{s.url}/v1/programs", content=guest("misbehave"), timeout=60,
                            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/wasm"})
            assert up.status_code in (200, 201), up.text
            threads, events, seen = busy(s.url, key, up.json()["id"])
            assert all(e.wait(30) for e in events), "the model never got busy"
            s.proc.send_signal(signal.SIGTERM)
            rc = s.proc.wait(timeout=30)
            for t in threads:
                t.join(30)
            s.proc = None
            log = s.log()
            assert rc == 0, log
            assert not any(c in log for c in ORT_COMPLAINTS), f"attempt {attempt}:\n{log}"
            # The run was left for the next start, and its stream said so.
            assert seen[0][-1] == "stopped", seen[0]
    finally:
        s.stop()
