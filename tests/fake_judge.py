"""A local OpenAI-compatible judge that misbehaves on purpose: the judge faults of issue 14, for real, on 127.0.0.1.

    with FakeJudge(script=["500", "yes"]) as judge:
        judge_answers(JudgeConfig(base_url=judge.url, ...), questions, answers)

Each POST to `/v1/chat/completions` takes the next reply of `script`, then `default`:
- "yes", "no": a proper chat completion with that text;
- "500", "400", "401", "404": that HTTP status with an OpenAI-style error body;
- "sleep": waits `sleep_s` (longer than the client's timeout) before answering "yes";
- "not-json": status 200 and an HTML page; "no-choices": a completion with `choices: []`;
- "no-content": a choice without message text; "maybe": a completion whose text is neither yes nor no.
With `api_key`, a request whose Authorization header is not `Bearer <api_key>` gets 401, whatever the script.
Every request's headers and JSON body are kept in `requests`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def completion(text: str | None, choices: bool = True) -> dict[str, Any]:
    message = {"role": "assistant"} if text is None else {"role": "assistant", "content": text}
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": "judge",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}] if choices else [],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


class FakeJudge:
    def __init__(
        self,
        script: Iterable[str] = (),
        default: str = "yes",
        api_key: str | None = None,
        sleep_s: float = 1.0,
    ) -> None:
        self.script = list(script)
        self.default = default
        self.api_key = api_key
        self.sleep_s = sleep_s
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeJudge:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def next_reply(self, headers: dict[str, str], body: Any) -> str:
        with self.lock:
            self.requests.append({"headers": headers, "body": body})
            reply = self.script.pop(0) if self.script else self.default
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return "401"
        return reply

    def handler(self) -> type[BaseHTTPRequestHandler]:
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # no request lines on stderr
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                headers = {name.lower(): value for name, value in self.headers.items()}
                reply = judge.next_reply(headers, body)
                if reply == "sleep":
                    time.sleep(judge.sleep_s)
                    reply = "yes"
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                    self.answer(reply)

            def answer(self, reply: str) -> None:
                if reply.isdigit():
                    error = {"error": {"message": f"fake judge fault {reply}", "type": "fake", "code": reply}}
                    self.send(int(reply), json.dumps(error))
                elif reply == "not-json":
                    self.send(200, "<html><body>502 Bad Gateway</body></html>", "text/html")
                elif reply == "no-choices":
                    self.send(200, json.dumps(completion("yes", choices=False)))
                elif reply == "no-content":
                    self.send(200, json.dumps(completion(None)))
                else:  # "yes", "no", "maybe" and any other text
                    self.send(200, json.dumps(completion(reply)))

            def send(self, status: int, text: str, content_type: str = "application/json") -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
