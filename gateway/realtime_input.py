"""A realtime session's input turn-taking: the input audio buffer, server VAD, early transcription
and the commit of a turn into a user item.

`input_audio_buffer.append` adds pcm16 mono 24 kHz; with server VAD (`gateway.vad.TurnDetector`)
speech started / stopped events cut the turns (speech while a reply plays cancels it: barge-in), a
turn longer than `max_buffer_s` is cut and answered, and outside speech only the prefix padding is
kept. At a pause inside a turn the turn is transcribed speculatively: kept when only silence
follows, dropped when the user goes on, so the transcript is ready when VAD is sure the turn ended.
The pause comes early enough for that: as long before the end of the silence as transcriptions take
here lately (`Realtime.transcription_s`), but after at least `MIN_PAUSE_MS` of silence and at most
half of it (`_pause_ms`). Without VAD the client commits (`input_audio_buffer.commit`)
and asks for a response itself. A committed turn becomes a user item at once; its transcript fills
it when ready (a response created meanwhile waits for it).

Transcriptions are streamed (`VoiceClient.stream_transcription`: one piece per Whisper segment):
each piece goes out as `conversation.item.input_audio_transcription.delta` once its turn is
committed (a speculative transcription keeps its pieces until then), then `.completed`. In a
transcription session (`gateway.realtime_transcription`) the same turns are only transcribed,
never answered.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from typing import Any

from core.audio import encode, from_pcm16
from core.voice_client import Transcript, VoiceClient
from core.voice_errors import VoiceError
from gateway.realtime_conversation import Conversation, Item, Send
from gateway.realtime_events import INPUT_RATE, BadEvent, SessionConfig, event, new_id
from gateway.realtime_reply import BYTES_PER_MS, Responses, Spawn, error_code, error_message
from gateway.realtime_shared import Realtime
from gateway.vad import FRAME_MS, TurnDetector


class InputAudio:
    """One session's input audio buffer and its turn-taking (see module docstring)."""

    def __init__(
        self,
        realtime: Realtime,
        client: VoiceClient,
        conversation: Conversation,
        responses: Responses,
        config: SessionConfig,
        *,
        send: Send,
        spawn: Spawn,
    ) -> None:
        self.realtime, self.client, self.conversation, self.responses = realtime, client, conversation, responses
        self.config = config
        self._send, self._spawn = send, spawn
        self.max_buffer_s = realtime.settings.max_buffer_s
        self.detector: TurnDetector | None = None
        self.buffer = bytearray()
        self._buffer_start_ms = 0  # session audio time of buffer[0]
        self._speech_start_ms: int | None = None
        self._item_id = new_id("item")  # id of the user item the buffer will become
        self.transcribing: asyncio.Task[None] | None = None  # the last committed turn's transcription
        # Transcription started at a pause in the turn: (the buffer then, it), used when the turn ends there.
        self._early: tuple[bytes, _Transcription] | None = None

    def configure(self) -> None:
        """Apply the session config's turn detection (after a session.update)."""
        if self.detector is not None and self.config.vad is not None:
            self.detector.options = self.config.vad
            self.detector.pause_ms = self._pause_ms()
        elif self.config.vad is None:
            self.detector, self._speech_start_ms = None, None

    async def append(self, data: dict[str, Any]) -> None:
        """`input_audio_buffer.append`."""
        audio = data.get("audio")
        if not isinstance(audio, str):
            raise BadEvent("audio must be a base64 string of pcm16 mono 24 kHz.", param="audio")
        try:
            pcm = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError) as e:
            raise BadEvent(f"audio is not valid base64: {e}", param="audio") from e
        if len(pcm) % 2:
            raise BadEvent("audio must hold whole 16-bit samples (an even number of bytes).", param="audio")
        max_bytes = int(self.max_buffer_s * 1000) * BYTES_PER_MS
        vad = self.config.vad
        if vad is None and len(self.buffer) + len(pcm) > max_bytes:
            raise BadEvent(
                f"The input audio buffer would exceed {self.max_buffer_s:g} s; commit or clear it first.",
                code="input_audio_buffer_too_large",
                param="audio",
            )
        self.buffer += pcm
        if vad is None:
            return
        if self.detector is None:
            self.detector = TurnDetector(
                self.realtime.vad,
                vad,
                start_ms=self._end_ms() - len(pcm) // BYTES_PER_MS,
                pause_ms=self._pause_ms(),
            )
        events = (
            self.detector.feed(pcm) if len(pcm) < 10 * INPUT_RATE else await asyncio.to_thread(self.detector.feed, pcm)
        )
        for kind, ms in events:
            if kind == "start":
                await self._speech_started(ms)
            elif kind == "stop":
                await self._speech_stopped(ms)
            elif kind == "pause":  # transcribe now; kept if the turn ends in this silence
                self._drop_early()
                snapshot = bytes(self.buffer)
                self._early = (snapshot, self._start_transcription(snapshot))
            else:  # "resume": the user went on, so that transcript would miss words
                self._drop_early()
        if self._speech_start_ms is None:
            # Not speaking: keep only what a start could still reach back to (the prefix padding).
            self._trim_to(self._end_ms() - vad.prefix_padding_ms - 100)
        elif len(self.buffer) > max_bytes:  # a turn longer than the limit is cut and answered
            await self._speech_stopped(self._end_ms())

    async def commit(self, data: dict[str, Any]) -> None:
        """`input_audio_buffer.commit`: the buffer becomes a user turn (no response: the client asks)."""
        if len(self.buffer) < 100 * BYTES_PER_MS:
            raise BadEvent(
                "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer "
                f"only has {len(self.buffer) / BYTES_PER_MS:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty",
            )
        self.conversation.turn_ended_at = time.perf_counter()
        if self.detector is not None:
            self.detector.reset()
        self._speech_start_ms = None
        await self._commit_buffer(respond=False)  # without VAD the client asks with response.create

    async def clear(self, data: dict[str, Any]) -> None:
        """`input_audio_buffer.clear`."""
        self._drop_early()
        self._buffer_start_ms = self._end_ms()
        self.buffer.clear()
        self._speech_start_ms = None
        if self.detector is not None:
            self.detector.reset()
        await self._send(event("input_audio_buffer.cleared"))

    def _pause_ms(self) -> int | None:
        """Where the next turn's early transcription starts (`_pause_ms`), for the session's VAD."""
        vad = self.config.vad
        return None if vad is None else _pause_ms(vad.silence_duration_ms, self.realtime.transcription_s)

    def _end_ms(self) -> int:
        return self._buffer_start_ms + len(self.buffer) // BYTES_PER_MS

    def _trim_to(self, ms: int) -> None:
        drop = max(0, ms - self._buffer_start_ms) * BYTES_PER_MS
        if drop:
            del self.buffer[:drop]
            self._buffer_start_ms += drop // BYTES_PER_MS

    def _drop_early(self) -> None:
        if self._early is not None:
            self._early[1].cancel()
            self._early = None

    async def _speech_started(self, ms: int) -> None:
        self._drop_early()
        if self.detector is not None:
            self.detector.pause_ms = self._pause_ms()  # from the transcriptions' latest pace
        self._speech_start_ms = ms
        self._trim_to(ms)
        await self._send(event("input_audio_buffer.speech_started", audio_start_ms=ms, item_id=self._item_id))
        if self.responses.active is not None and self.config.interrupt_response and self._conversing():
            await self.responses.cancel("turn_detected")  # barge-in

    async def _speech_stopped(self, ms: int) -> None:
        self._speech_start_ms = None
        if self.detector is not None:
            self.detector.reset()
        self.conversation.turn_ended_at = time.perf_counter()
        await self._send(event("input_audio_buffer.speech_stopped", audio_end_ms=ms, item_id=self._item_id))
        await self._commit_buffer(respond=self.config.create_response and self._conversing())

    def _conversing(self) -> bool:
        """A conversation answers its turns; a transcription session only transcribes them."""
        return self.config.type != "transcription"

    async def _commit_buffer(self, *, respond: bool) -> None:
        """Turn the buffer into a user item: committed + item events now, transcription in a task."""
        pcm, item_id = bytes(self.buffer), self._item_id
        self._buffer_start_ms = self._end_ms()
        self.buffer.clear()
        self._item_id = new_id("item")
        await self._send(
            event("input_audio_buffer.committed", item_id=item_id, previous_item_id=self.conversation.last_item_id)
        )
        item = await self.conversation.add_audio_turn(item_id)
        early, self._early = self._early, None
        if early is not None and not pcm.startswith(early[0]):  # the buffer changed since the pause
            early[1].cancel()
            early = None
        running = early[1] if early is not None else self._start_transcription(pcm)
        self.transcribing = self._spawn(self._transcribe(item, pcm, running, after=self.transcribing))
        if respond:
            await self.responses.start(wait_for=self.transcribing)

    def _start_transcription(self, pcm: bytes) -> _Transcription:
        """Start transcribing `pcm` (a turn, or the turn up to a pause) in a session task."""
        running = _Transcription()
        running.task = self._spawn(self._stream_transcript(pcm, running))
        return running

    async def _stream_transcript(self, pcm: bytes, out: _Transcription) -> None:
        """Transcribe `pcm` into `out`: its pieces as they come, then its Transcript or the VoiceError
        to report. Always ends `out`, so whoever waits on it is never left hanging. Other classes of
        work are held back while it runs (`gateway.admission`): from a pause, the turn may already
        have ended, and the sooner its transcript is ready, the sooner the answer starts."""
        hold = self.realtime.hold_others()
        started = time.perf_counter()
        with self.realtime.tracer.start_as_current_span("realtime.transcription"):
            try:
                wav = await asyncio.to_thread(_wav, pcm)
                pieces = self.client.stream_transcription(
                    wav,
                    filename="turn.wav",
                    model=self.config.transcription_model,
                    language=self.config.language,
                    prompt=self.config.transcription_prompt,
                )
                async for piece in pieces:
                    if isinstance(piece, Transcript):
                        self.realtime.transcribed(time.perf_counter() - started)
                    out.put(piece)
            except VoiceError as e:
                out.put(e)
            finally:
                hold.release()
                out.put(VoiceError("transcribe", "the transcription stopped"))  # ignored after an end

    async def _transcribe(
        self, item: Item, pcm: bytes, running: _Transcription, *, after: asyncio.Task[None] | None
    ) -> None:
        """Send `running` (the committed turn `pcm`'s transcription, maybe started at the pause where
        the turn ended: only silence came after it, so its text is the turn's) as delta events, fill
        `item` with its text and send `.completed` (or `.failed`). Its events follow those of the turn
        before (`after`), so captions come in the order spoken; the transcriptions run side by side."""
        kind, ids = "conversation.item.input_audio_transcription", {"item_id": item.id, "content_index": 0}
        if after is not None:
            await asyncio.gather(after, return_exceptions=True)
        while True:
            piece = await running.queue.get()
            if isinstance(piece, str):
                await self._send(event(f"{kind}.delta", **ids, delta=piece))
                continue
            break
        if isinstance(piece, VoiceError):
            self.conversation.remove(item)
            error = {"type": "transcription_error", "code": error_code(piece), "message": error_message(piece)}
            await self._send(event(f"{kind}.failed", **ids, error=error))
            return
        text = piece.text
        item.message["content"] = text
        if not text:
            self.conversation.remove(item)
        used = {"type": "duration", "seconds": round(len(pcm) / (2 * INPUT_RATE), 3)}
        await self._send(event(f"{kind}.completed", **ids, transcript=text, usage=used))


class _Transcription:
    """One streamed transcription: its pieces (str), then one end (a Transcript or a VoiceError), in
    `queue` as they come; `task` is the session task that fills it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | Transcript | VoiceError] = asyncio.Queue()
        self.task: asyncio.Task[Any] | None = None
        self._ended = False

    def cancel(self) -> None:
        """Stop the transcription (it is not needed any more)."""
        if self.task is not None:
            self.task.cancel()

    def put(self, piece: str | Transcript | VoiceError) -> None:
        """Add a piece or the end (anything after the end is dropped)."""
        if not self._ended:
            self._ended = not isinstance(piece, str)
            self.queue.put_nowait(piece)


MIN_PAUSE_MS = FRAME_MS * 4
"""The shortest silence inside a turn that starts an early transcription (128 ms): gaps between words
are shorter, so they do not each start one."""
_MARGIN_MS = 50  # the early transcription should be done this long before VAD is sure


def _pause_ms(silence_duration_ms: int, transcription_s: float) -> int | None:
    """How long a silence inside a turn must last before the turn is transcribed speculatively: long
    enough before the `silence_duration_ms` that ends a turn that a transcription taking
    `transcription_s` is done by then, but at least MIN_PAUSE_MS and at most half that silence; none
    when that would leave under 100 ms to win. With a 500 ms silence: 250 ms when transcriptions take
    0.2 s or less, 150 ms at 0.3 s, 128 ms from 0.32 s."""
    ahead = silence_duration_ms - int(transcription_s * 1000) - _MARGIN_MS
    pause = max(MIN_PAUSE_MS, min(ahead, silence_duration_ms // 2))
    return pause if silence_duration_ms - pause >= 100 else None


def _wav(pcm: bytes) -> bytes:
    """pcm16 mono 24 kHz as a WAV file (what the transcription route takes). CPU: call in a thread."""
    return encode(from_pcm16(pcm), INPUT_RATE, "wav")
