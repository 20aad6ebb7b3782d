"""The helper process of ``common.bounded``: runs jq programs and backtracking regular
expressions for its parent, one request per line of JSON on stdin, one answer per line on stdout.

Run as a script (``python -I <this file>``), with an empty environment and a memory limit: it
imports nothing of Lanner, reads no file and holds no secret. The parent kills it when a request
runs past its deadline; a crash (jq aborts when it runs out of memory) is an answer too.
"""

from __future__ import annotations

import functools
import json
import math
import re
import resource
import signal
import sys
from typing import Any


@functools.lru_cache(maxsize=256)
def _jq(program: str) -> Any:
    import jq  # type: ignore[import-not-found]

    return jq.compile(program)


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII)


def _sub(pattern: re.Pattern[str], template: str, text: str, max_output: int) -> dict[str, Any]:
    references: list[int | str] = [
        int(number) if number else name
        for number, name in re.findall(r"\\(?:(\d+)|g<(\w+)>)", template)
    ]
    size = len(text)
    try:  # measure the result before building it
        for match in pattern.finditer(text):
            size += len(template) - (match.end() - match.start())
            size += sum(len(match.group(r) or "") for r in references)
            if size > max_output:
                return {"too_long": True}
    except (IndexError, re.error):
        pass  # a bad group reference: sub() names it below
    try:
        return {"result": pattern.sub(template, text)}
    except (IndexError, re.error) as exc:
        return {"error": str(exc)}


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    op = request["op"]
    if op == "jq":
        try:
            return {"result": list(_jq(request["program"]).input_text(request["text"]).all())}
        except ValueError as exc:
            return {"error": str(exc)}
        except MemoryError:
            return {"memory": True}
    pattern = _regex(request["pattern"])
    if op == "fullmatch":
        return {"result": pattern.fullmatch(request["text"]) is not None}
    if op == "search":
        return {"result": pattern.search(request["text"]) is not None}
    if op == "sub":
        return _sub(pattern, request["template"], request["text"], request["max_output"])
    return {"error": f"unknown operation {op!r}"}


def main() -> None:
    memory = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    import jq  # noqa: F401 - loaded before the first request: its deadline is for the request

    sys.stdout.write('{"ready": true}\n')
    sys.stdout.flush()
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
            # the parent kills this process at the deadline; should the parent itself die
            # first, SIGALRM's default action ends the process even while jq runs in C
            signal.alarm(math.ceil(request.get("seconds", 60)) + 2)
            answer = _answer(request)
            signal.alarm(0)
        except MemoryError:
            answer = {"memory": True}
        except Exception as exc:  # noqa: BLE001 - any failure is the request's answer
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        try:
            data = json.dumps(answer)
        except (TypeError, ValueError) as exc:
            data = json.dumps({"error": f"result is not JSON: {exc}"})
        except MemoryError:
            data = json.dumps({"memory": True})
        sys.stdout.write(data + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
