"""A real HTTP server on loopback that speaks enough of the OpenAI API for the generation tests and bench.

Chat completions, files and batches, with faults injected per question: latency, 429 with Retry-After,
500, timeouts (answers after the client gave up), malformed bodies, answers missing CBT parts. It counts
what it served, so tests can check that nothing already finished was paid for twice.

    python tests/fake_openai.py --latency 0.5     # standalone: prints its base URL
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import hashlib
import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cbt.generate import answer_problems
from cbt.io import load_sample

_QUESTION = re.compile(r"(?:问题|Question)[:：]\s*(.+)")
PARTIAL_ANSWER = "你可以每天安排二十分钟散步，也可以把担心写在本子上，睡前做几次深呼吸。"


class FakeOpenAI:
    """Start with `with FakeOpenAI(...) as server:`; `server.base_url` is the /v1 URL to give the client."""

    def __init__(self, latency: float = 0.0, plans: dict[str, list[str]] | None = None, batch_polls: int = 2) -> None:
        self.latency = latency
        self.plans = {q: list(v) for q, v in (plans or {}).items()}
        self.batch_polls = batch_polls
        self.answers = [r.answer for r in load_sample() if not answer_problems(r.answer)]
        self.lock = threading.Lock()
        self.requests = 0
        self.ok_by_question: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------ behaviour

    def answer_for(self, question: str) -> str:
        digest = int(hashlib.sha256(question.encode()).hexdigest(), 16)
        return self.answers[digest % len(self.answers)]

    def next_action(self, question: str) -> str:
        with self.lock:
            plan = self.plans.get(question)
            return plan.pop(0) if plan else "ok"

    def completion(self, prompt: str, model: str) -> tuple[str, dict[str, Any]]:
        """(action, body) for one chat request; the action decides how the handler replies."""
        m = _QUESTION.search(prompt)
        question = m.group(1).strip() if m else prompt.strip()
        action = self.next_action(question)
        text = PARTIAL_ANSWER if action == "partial" else self.answer_for(question)
        body = {
            "id": f"chatcmpl-{self.requests}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": len(prompt),
                "completion_tokens": len(text),
                "total_tokens": len(prompt) + len(text),
            },
        }
        if action in ("ok", "partial"):
            with self.lock:
                self.ok_by_question[question] += 1
        return action, body

    # ------------------------------------------------------------ HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_POST(self) -> None:
                raw = self._body()
                if self.path.endswith("/chat/completions"):
                    self._chat(json.loads(raw))
                elif self.path.endswith("/files"):
                    self._upload(raw)
                elif self.path.endswith("/batches"):
                    self._create_batch(json.loads(raw))
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_GET(self) -> None:
                if m := re.search(r"/files/([^/]+)/content$", self.path):
                    self._send(200, server.files.get(m.group(1), b""))
                elif m := re.search(r"/batches/([^/?]+)$", self.path):
                    self._send(200, server.poll_batch(m.group(1)))
                elif re.search(r"/batches(\?|$)", self.path):
                    self._send(200, {"object": "list", "data": list(server.batches.values()), "has_more": False})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def _chat(self, req: dict[str, Any]) -> None:
                with server.lock:
                    server.requests += 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.latency)
                    prompt = req["messages"][-1]["content"]
                    action, body = server.completion(prompt, req.get("model", ""))
                    if action.startswith("429"):
                        wait = action.split(":")[1] if ":" in action else "1"
                        self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": wait})
                    elif action == "500":
                        self._send(500, {"error": {"message": "server error"}})
                    elif action.startswith("timeout"):
                        time.sleep(float(action.split(":")[1]) if ":" in action else 5.0)
                        self._send(200, body)
                    elif action == "malformed":
                        self._send(200, b'{"id": "x", "choices": [ {"message": ')
                    elif req.get("stream"):
                        self._stream(body)
                    else:
                        self._send(200, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _stream(self, body: dict[str, Any]) -> None:
                """Server-sent events, one chunk per sentence, as OpenAI-compatible servers stream."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                text = body["choices"][0]["message"]["content"]
                for piece in re.findall(r"[^。！？\n]*[。！？\n]*", text):
                    if not piece:
                        continue
                    chunk = {
                        "id": body["id"],
                        "object": "chat.completion.chunk",
                        "created": body["created"],
                        "model": body["model"],
                        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True

            def _upload(self, raw: bytes) -> None:
                head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
                msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
                content = next(p.get_payload(decode=True) for p in msg.iter_parts() if p.get_filename())
                fid = f"file-{len(server.files) + 1}"
                server.files[fid] = content
                self._send(
                    200,
                    {
                        "id": fid,
                        "object": "file",
                        "bytes": len(content),
                        "created_at": 0,
                        "filename": "batch.jsonl",
                        "purpose": "batch",
                        "status": "processed",
                    },
                )

            def _create_batch(self, req: dict[str, Any]) -> None:
                bid = f"batch_{len(server.batches) + 1}"
                server.batches[bid] = {
                    "id": bid,
                    "object": "batch",
                    "endpoint": req["endpoint"],
                    "input_file_id": req["input_file_id"],
                    "completion_window": "24h",
                    "status": "in_progress",
                    "created_at": int(time.time()),
                    "metadata": req.get("metadata") or {},
                    "output_file_id": None,
                    "error_file_id": None,
                    "polls": 0,
                }
                self._send(200, server.public(bid))

        return Handler

    def public(self, bid: str) -> dict[str, Any]:
        return {k: v for k, v in self.batches[bid].items() if k != "polls"}

    def poll_batch(self, bid: str) -> dict[str, Any]:
        """A batch completes after `batch_polls` status checks; its output answers every request."""
        b = self.batches[bid]
        b["polls"] += 1
        if b["status"] == "in_progress" and b["polls"] >= self.batch_polls:
            out = []
            for line in self.files[b["input_file_id"]].decode().splitlines():
                req = json.loads(line)
                prompt = req["body"]["messages"][-1]["content"]
                action, body = self.completion(prompt, req["body"]["model"])
                response = (
                    {"status_code": 200, "body": body}
                    if action in ("ok", "partial")
                    else {"status_code": 500, "body": {}}
                )
                out.append(
                    json.dumps(
                        {
                            "id": f"r-{req['custom_id']}",
                            "custom_id": req["custom_id"],
                            "response": response,
                            "error": None,
                        },
                        ensure_ascii=False,
                    )
                )
            fid = f"file-{len(self.files) + 1}"
            self.files[fid] = ("\n".join(out) + "\n").encode()
            b.update(status="completed", output_file_id=fid)
        return self.public(bid)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latency", type=float, default=0.5)
    args = p.parse_args()
    with FakeOpenAI(latency=args.latency) as server:
        print(server.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
