"""A fake Telegram Bot API server on 127.0.0.1 (aiohttp), for driving a real aiogram bot in tests and
in `june bench telegram`.

Implements what June's bot uses, with the real wire shapes (https://core.telegram.org/bots/api):
``POST /bot<token>/<method>`` (form, multipart or JSON body) → ``{"ok": true, "result": ...}`` for
getMe, deleteWebhook, setWebhook, setMyCommands, getUpdates (long poll with offset confirmation),
getFile, sendMessage (``parse_mode=Markdown`` with unbalanced ``*``/``_``/backticks fails with
Telegram's "can't parse entities" 400), sendVoice (multipart upload), sendChatAction; and
``GET /file/bot<token>/<file_path>``.
Every method call is recorded as a `Call` (failed ones too); tests enqueue updates and wait for calls.

Faults, as Telegram (or a proxy in front of it) shows them: `fail_next` makes the next calls of a
method answer 429 with ``parameters.retry_after``, a 5xx in the Bot API's JSON shape, or a
proxy's HTML 502 page; `delay` holds a method's answer back (a slow upload: the call is recorded,
and so carried out, when it arrives). `confirmed` is the highest getUpdates offset seen: Telegram
forgets every update below it, and so does the fake, so a new bot polling the same fake gets what
was left unconfirmed again, as after a restart.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

BOT_ID = 424242
TOKEN = f"{BOT_ID}:TEST-token-for-june"


@dataclass
class Fault:
    """One injected failure: `status` with Telegram's JSON error (``retry_after`` for a 429), or with
    `html` a proxy's error page that is not JSON at all."""

    status: int
    retry_after: int | None = None
    html: bool = False

    def response(self) -> web.Response:
        if self.html:
            return web.Response(
                status=self.status,
                text=f"<html><body><h1>{self.status} Bad Gateway</h1></body></html>",
                content_type="text/html",
            )
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": "Too Many Requests: retry after" if self.status == 429 else "Bad Gateway",
        }
        if self.retry_after is not None:
            body["description"] += f" {self.retry_after}"
            body["parameters"] = {"retry_after": self.retry_after}
        return web.json_response(body, status=self.status)


@dataclass
class Call:
    """One Bot API method call: `params` as sent (strings from forms, JSON values parsed), `files` uploads."""

    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    failed: bool = False
    """The fake answered this call with an injected fault (Telegram did not carry it out)."""
    at: float = field(default_factory=time.perf_counter)
    """When the call arrived (`time.perf_counter()`)."""


class FakeBotAPI:
    """``async with FakeBotAPI() as api:`` serves on `api.url` until the block ends.

    `max_poll_wait` caps a getUpdates long poll (seconds) so a stopping bot is not held up.
    """

    def __init__(self, *, token: str = TOKEN, max_poll_wait: float = 1.0) -> None:
        self.token = token
        self.max_poll_wait = max_poll_wait
        self.calls: list[Call] = []
        self.updates: list[dict[str, Any]] = []
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, data)
        self.faults: dict[str, list[Fault]] = {}  # method (lower case) -> failures to answer next
        self.delays: dict[str, float] = {}  # method (lower case) -> seconds before answering
        self.file_delay = 0.0  # seconds before a file download answers (a hung download)
        self.confirmed = 0  # the highest getUpdates offset seen
        self.url = ""
        self._changed = asyncio.Condition()
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._file_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> FakeBotAPI:
        app = web.Application(client_max_size=50 * 2**20)
        app.router.add_post("/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    # --- what tests do ---------------------------------------------------------------------------

    def fail_next(
        self, method: str, status: int, *, times: int = 1, retry_after: int | None = None, html: bool = False
    ) -> None:
        """The next `times` calls of `method` fail with `status` (see `Fault`)."""
        self.faults.setdefault(method.lower(), []).extend(Fault(status, retry_after, html) for _ in range(times))

    def delay(self, method: str, seconds: float) -> None:
        """Calls of `method` are answered `seconds` after they arrive (they are recorded at once)."""
        self.delays[method.lower()] = seconds

    def replies(self, chat_id: int) -> list[str]:
        """What the bot sent to `chat_id` that Telegram accepted: message texts and "<voice>", in order."""
        out = []
        for c in self.calls:
            if str(c.params.get("chat_id")) != str(chat_id) or c.failed:
                continue
            if c.method.lower() == "sendmessage":
                out.append(str(c.params.get("text")))
            elif c.method.lower() == "sendvoice":
                out.append("<voice>")
        return out

    def add_file(self, data: bytes, *, suffix: str = "oga") -> str:
        """Store `data` for getFile/download; returns its file_id."""
        n = next(self._file_ids)
        file_id = f"file-{n}"
        self.files[file_id] = (f"voice/file_{n}.{suffix}", data)
        return file_id

    async def enqueue_message(
        self, chat_id: int, *, chat_type: str = "private", user_id: int | None = None, **content: Any
    ) -> int:
        """Queue a message update (`content`: ``text=...``, ``voice={...}``, a service field such as
        ``new_chat_members=[...]``) in a private chat, or a "group"/"supergroup" with `chat_type`
        (from `user_id`, default `chat_id`); returns update_id."""
        update_id = next(self._update_ids)
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        chat.update({"first_name": "Tester"} if chat_type == "private" else {"title": "Test group"})
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": {"id": user_id or chat_id, "is_bot": False, "first_name": "Tester"},
            **content,
        }
        if isinstance(content.get("text"), str) and content["text"].startswith("/"):
            command = content["text"].split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        async with self._changed:
            self.updates.append({"update_id": update_id, "message": message})
            self._changed.notify_all()
        return update_id

    async def enqueue_voice(
        self, chat_id: int, ogg: bytes, *, duration: int = 2, kind: str = "voice", file_size: int | None = None
    ) -> int:
        """Queue a media update (`kind`: "voice", "audio" or "video_note") whose file is `ogg`; returns update_id."""
        file_id = self.add_file(ogg)
        media: dict[str, Any] = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "duration": duration,
            "file_size": len(ogg) if file_size is None else file_size,
        }
        if kind == "video_note":
            media["length"] = 240
        else:
            media["mime_type"] = "audio/ogg"
        content: dict[str, Any] = {kind: media}
        return await self.enqueue_message(chat_id, **content)

    def update(self, chat_id: int, text: str) -> dict[str, Any]:
        """A text-message update as Telegram would POST it to a webhook (not queued)."""
        return {
            "update_id": next(self._update_ids),
            "message": {
                "message_id": next(self._message_ids),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private", "first_name": "Tester"},
                "from": {"id": chat_id, "is_bot": False, "first_name": "Tester"},
                "text": text,
            },
        }

    def calls_to(self, method: str, *, chat_id: int | None = None) -> list[Call]:
        """Recorded calls of `method` (case-insensitive), optionally only those for `chat_id`."""
        return [
            c
            for c in self.calls
            if c.method.lower() == method.lower() and (chat_id is None or str(c.params.get("chat_id")) == str(chat_id))
        ]

    async def wait_for(
        self,
        method: str,
        *,
        chat_id: int | None = None,
        count: int = 1,
        timeout: float = 30.0,
        where: Callable[[Call], bool] = lambda c: True,
    ) -> list[Call]:
        """Wait until `count` matching calls of `method` were made; raises TimeoutError with the call log."""
        deadline = time.monotonic() + timeout
        async with self._changed:
            while True:
                found = [c for c in self.calls_to(method, chat_id=chat_id) if where(c)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(c.method, {k: v for k, v in c.params.items() if k != "voice"}) for c in self.calls]
                    raise TimeoutError(f"{count} × {method} for chat {chat_id} not seen in {timeout} s; calls: {seen}")
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except TimeoutError:
                    pass

    async def wait_until(self, done: Callable[[list[Call]], bool], timeout: float) -> bool:
        """Wait until `done(calls)` holds (checked at each new call); False when `timeout` seconds passed first."""
        deadline = time.monotonic() + timeout
        async with self._changed:
            while not done(self.calls):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except TimeoutError:
                    pass
        return True

    # --- the server -------------------------------------------------------------------------------

    async def _method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params, files = await _read_params(request)
        call = Call(method, params, files)
        faults = self.faults.get(method.lower())
        fault = faults.pop(0) if faults else None
        call.failed = fault is not None
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        if fault is not None:
            return fault.response()
        if delay := self.delays.get(method.lower()):
            await asyncio.sleep(delay)
        handler = getattr(self, f"_m_{method.lower()}", None)
        if handler is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found: method not found"}, status=404
            )
        result = await handler(params)
        if isinstance(result, web.Response):
            return result
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        if self.file_delay:
            await asyncio.sleep(self.file_delay)
        for file_path, data in self.files.values():
            if file_path == path:
                return web.Response(body=data, content_type="application/octet-stream")
        return web.Response(status=404)

    async def _m_getme(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"id": BOT_ID, "is_bot": True, "first_name": "June", "username": "june_test_bot"}

    async def _m_deletewebhook(self, params: dict[str, Any]) -> bool:
        return True

    async def _m_setmycommands(self, params: dict[str, Any]) -> bool:
        return True

    async def _m_setwebhook(self, params: dict[str, Any]) -> bool:
        return True

    async def _m_sendchataction(self, params: dict[str, Any]) -> bool:
        return True

    async def _m_getupdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Updates with id >= offset; a given offset confirms (forgets) every earlier update."""
        offset = int(params.get("offset") or 0)
        self.confirmed = max(self.confirmed, offset)
        limit = int(params.get("limit") or 100)
        wait = min(float(params.get("timeout") or 0), self.max_poll_wait)
        deadline = time.monotonic() + wait
        async with self._changed:
            while True:
                if offset:
                    self.updates = [u for u in self.updates if u["update_id"] >= offset]
                if self.updates or time.monotonic() >= deadline:
                    return self.updates[:limit]
                try:
                    await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())
                except TimeoutError:
                    pass

    async def _m_getfile(self, params: dict[str, Any]) -> dict[str, Any] | web.Response:
        file_id = str(params.get("file_id"))
        if file_id not in self.files:
            return web.json_response(
                {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"}, status=400
            )
        file_path, data = self.files[file_id]
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(data), "file_path": file_path}

    async def _m_sendmessage(self, params: dict[str, Any]) -> dict[str, Any] | web.Response:
        text = str(params.get("text", ""))
        if len(text) > 4096:
            return _bad_request("message is too long")
        if str(params.get("parse_mode", "")).lower() == "markdown" and any(text.count(c) % 2 for c in "*_`"):
            return _bad_request("can't parse entities: Can't find end of the entity starting at byte offset 0")
        return {**self._sent_message(params), "text": str(params.get("text", ""))}

    async def _m_sendvoice(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._sent_message(params)
        message["voice"] = {"file_id": "sent-voice", "file_unique_id": "usent-voice", "duration": 1}
        if params.get("caption"):
            message["caption"] = params["caption"]
        return message

    def _sent_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Tester"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "June"},
        }


def _bad_request(description: str) -> web.Response:
    return web.json_response({"ok": False, "error_code": 400, "description": f"Bad Request: {description}"}, status=400)


async def _read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Method parameters from a JSON, urlencoded or multipart body; nested values arrive JSON-encoded."""
    if request.content_type == "application/json":
        return await request.json(), {}
    params: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    if request.content_type == "multipart/form-data":
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):  # a nested multipart: the Bot API never sends one
                continue
            if part.filename is not None:
                files[part.name or ""] = bytes(await part.read())
            else:
                params[part.name or ""] = await part.text()
        # aiogram uploads under a random field name and passes ``voice="attach://<name>"``; key the
        # upload by the parameter it fills, as the Bot API does.
        for key, value in list(params.items()):
            if isinstance(value, str) and value.startswith("attach://") and value[9:] in files:
                files[key] = files.pop(value[9:])
    elif request.can_read_body:
        params = dict(await request.post())
    for key, value in params.items():
        if isinstance(value, str) and value[:1] in "[{":
            try:
                params[key] = json.loads(value)
            except ValueError:
                pass
    return params, files
