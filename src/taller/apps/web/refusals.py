"""How the explorer says no: a 4xx (or 500) with {"error": "…"} in Spanish that can always be sent, and messages that
never show where files live."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.responses import JSONResponse

QUOTED = 80  # characters of a bad name quoted back in an error
SURROGATE = re.compile("[\ud800-\udfff]")  # half of a UTF-16 pair: JSON can carry one, UTF-8 cannot
ABSOLUTE_PATH = re.compile(r"(?<![\w.~/-])/[^\s«»\"'`,;:()]*")  # in a message: /home/ana/runs/x/state.json


class ApiError(Exception):
    """A refusal of this server: the HTTP status and the one Spanish line the reply carries."""

    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


class SafeJSON(JSONResponse):
    """JSON that can always be sent: a lone surrogate (from a folder name that is not UTF-8, say) is escaped."""

    def render(self, content) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def refusal(status: int, message: str) -> SafeJSON:
    return SafeJSON({"error": SURROGATE.sub("\ufffd", message)}, status)


def without_paths(message: str, root: Path) -> str:
    """A library message as a reply may show it: a path under the served folder relative to the folder above it
    (runs/x/state.json), any other absolute path reduced to its last part. No reply says where files live."""
    base = root.resolve().parent

    def shown(match: re.Match) -> str:
        path = Path(match.group())
        return str(path.relative_to(base)) if path.is_relative_to(base) and path != base else path.name or "…"

    return ABSOLUTE_PATH.sub(shown, message)
