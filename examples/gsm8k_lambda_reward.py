"""A GSM8K reward function written as an AWS Lambda handler, served over plain HTTP.

`lambda_handler(event, context)` follows AWS's GSM8K sample for Bedrock RFT: the event
is a bare JSON list of trajectories (or `{"trajectories": [...]}`), each
`{"id", "messages", "reference_answer", "metadata"}`; the answer is the last assistant
message; the final number is the strict `#### N` in its last 300 characters; the
reply is one `{"id", "aggregate_reward_score", "metrics_list"}` per trajectory. The
same function would deploy to Lambda unchanged; here a small stdlib `http.server`
puts it behind a URL for openrft's `lambda` grader:

    python examples/gsm8k_lambda_reward.py --port 9000     # POST http://127.0.0.1:9000/grade
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = re.compile(r"#### (-?[0-9.,]+)")
TAIL_CHARS = 300
CORRECT_SCORE = 1.0
FORMAT_SCORE = 0.0


def _text(content: Any) -> str:
    """A message's content as text (a string, or a list of `{"type": "text"}` parts)."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _normalize(number: str) -> str:
    number = number.replace(",", "").replace("$", "").strip().rstrip(".")
    try:
        value = float(number)
    except ValueError:
        return number
    return str(int(value)) if value.is_integer() else str(value)


def extract_solution(text: str) -> str | None:
    """The number after the last `#### ` in the last 300 characters, `,` and `$` dropped."""
    found = ANSWER.findall(text[-TAIL_CHARS:].replace("$", ""))
    if not found:
        return None
    answer = _normalize(found[-1])
    return answer or None


def ground_truth(trajectory: dict[str, Any]) -> str | None:
    """The reference's final number: `reference_answer` (object with "text", or a string),
    else `metadata.reference_answer`."""
    reference = trajectory.get("reference_answer")
    if reference is None:
        reference = (trajectory.get("metadata") or {}).get("reference_answer")
    if isinstance(reference, dict):
        reference = reference.get("text", reference.get("final_answer"))
    if reference is None:
        return None
    reference = str(reference)
    return extract_solution(reference) or _normalize(reference) or None


def compute_score(response: str, truth: str | None) -> tuple[float, dict[str, float]]:
    predicted = extract_solution(response)
    formatted = 1.0 if predicted is not None else 0.0
    correct = predicted is not None and truth is not None and predicted == truth
    return (CORRECT_SCORE if correct else FORMAT_SCORE), {
        "accuracy": 1.0 if correct else 0.0,
        "format": formatted,
    }


def lambda_handler(event: Any, context: Any) -> list[dict[str, Any]]:
    """AWS Lambda entry point: one score per trajectory of the batch."""
    trajectories = event if isinstance(event, list) else event.get("trajectories", [])
    results = []
    for trajectory in trajectories:
        messages = trajectory.get("messages") or []
        assistant = [m for m in messages if m.get("role") == "assistant"]
        response = _text(assistant[-1].get("content")) if assistant else ""
        score, metrics = compute_score(response, ground_truth(trajectory))
        results.append(
            {
                "id": trajectory.get("id"),
                "aggregate_reward_score": score,
                "metrics_list": [
                    {"name": "accuracy", "value": metrics["accuracy"], "type": "Reward"},
                    {"name": "format", "value": metrics["format"], "type": "Metric"},
                ],
            }
        )
    return results


class LambdaHTTPHandler(BaseHTTPRequestHandler):
    """POST /grade (or /) with the Lambda event as JSON; the reply is the handler's return."""

    quiet = False

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        if self.path.rstrip("/") not in ("", "/grade"):
            self._reply(404, {"error": f"no route {self.path}"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            event = json.loads(self.rfile.read(length) or b"null")
            result = lambda_handler(event, None)
        except Exception as exc:  # a Lambda's unhandled error: reported, not hidden
            self._reply(500, {"errorMessage": str(exc), "errorType": type(exc).__name__})
            return
        self._reply(200, result)

    def do_GET(self) -> None:  # noqa: N802
        self._reply(200, {"status": "ok"})

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if not self.quiet:
            sys.stderr.write(f"reward server: {format % args}\n")


def serve(host: str = "127.0.0.1", port: int = 9000, *, quiet: bool = False) -> None:
    LambdaHTTPHandler.quiet = quiet
    server = ThreadingHTTPServer((host, port), LambdaHTTPHandler)
    print(f"reward function at http://{host}:{server.server_address[1]}/grade", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--quiet", action="store_true", help="no access log")
    args = parser.parse_args(argv)
    serve(args.host, args.port, quiet=args.quiet)


if __name__ == "__main__":
    main()
