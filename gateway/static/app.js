// june's voice page: the browser side of /v1/realtime (OpenAI's Realtime API events over a WebSocket).
// Mic → AudioWorklet (pcm16 24 kHz) → input_audio_buffer.append; reply audio deltas are queued
// on a 24 kHz AudioContext as they arrive; speech_started (or a push-to-talk press) stops playback.
// With the demo tool on (Settings), the session offers june a calculator: a function call is run
// here, shown as a card in the transcript, and its result sent back (function_call_output) for the answer.

const $ = (id) => document.getElementById(id);
const RATE = 24000;
const stats = (window.juneStats = { audioDeltas: 0, samplesPlayed: 0, turns: 0, toolCalls: 0 }); // read by the browser tests

const state = {
  ws: null,
  mode: "handsfree",
  micOn: false,
  pttDown: false,
  mic: null, // { ctx, stream, node }
  player: null, // AudioContext for replies
  playEnd: 0, // when the queued reply audio ends (player clock)
  sources: [],
  reply: null, // { itemId, started, el }
  userBubbles: new Map(), // item id → element
  toolCards: new Map(), // function_call item id → { el, args }
  toolOutputs: 0, // function_call_outputs sent for the response in flight (answered at its response.done)
};

// ---------- UI ----------

function setStatus(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.dataset.state = kind;
}

function showBanner(text) {
  const el = $("banner");
  el.textContent = text;
  el.hidden = !text;
}

function bubble(who, text = "", extra = "") {
  $("hint")?.remove();
  const el = document.createElement("div");
  el.className = `bubble ${who} ${extra}`.trim();
  el.innerHTML = `<span class="who">${who === "user" ? "You" : "june"}</span><p></p>`;
  el.querySelector("p").textContent = text;
  $("conversation").append(el);
  el.scrollIntoView({ block: "end", behavior: "smooth" });
  return el;
}

function setText(el, text) {
  el.querySelector("p").textContent = text;
  el.scrollIntoView({ block: "end" });
}

function setMicUi() {
  const on = state.mode === "handsfree" ? state.micOn : state.pttDown;
  $("mic").classList.toggle("live", on);
  $("mic").setAttribute("aria-pressed", String(on));
  $("mic-label").textContent =
    state.mode === "handsfree"
      ? state.micOn ? "Listening — just talk" : "Tap to start"
      : state.pttDown ? "Talking… release to send" : "Hold (or hold Space) to talk";
}

// ---------- connection ----------

function connect() {
  return new Promise((resolve, reject) => {
    if (state.ws && state.ws.readyState <= WebSocket.OPEN) return resolve(state.ws);
    const key = $("key").value.trim();
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/realtime?model=june`;
    const protocols = key ? ["realtime", `openai-insecure-api-key.${key}`] : ["realtime"];
    setStatus("Connecting…", "busy");
    let ws;
    try {
      ws = new WebSocket(url, protocols);
    } catch (e) {
      return reject(e);
    }
    state.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      showBanner("");
      setStatus("Connected", "ok");
      sendSession();
      resolve(ws);
    };
    ws.onmessage = (m) => onEvent(JSON.parse(m.data));
    ws.onerror = () => {
      if (!opened) {
        showBanner(`Can't reach june at ${location.host}. Is the gateway running?`);
        setStatus("Offline", "error");
        reject(new Error("unreachable"));
      }
    };
    ws.onclose = (e) => {
      state.ws = null;
      stopPlayback();
      if (opened) setStatus(e.code === 1008 ? "Not allowed" : "Disconnected", "error");
      if (opened && e.code !== 1008 && e.code !== 1000) showBanner(`Connection to june closed${e.reason ? `: ${e.reason}` : ""}.`);
    };
  });
}

function send(event) {
  if (state.ws?.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(event));
}

function sendSession() {
  const handsFree = state.mode === "handsfree";
  const session = {
    type: "realtime",
    audio: {
      input: {
        transcription: {}, // the gateway's turn model (JUNE_GATEWAY_REALTIME_TRANSCRIPTION_MODEL)
        turn_detection: handsFree ? { type: "server_vad", silence_duration_ms: 500, prefix_padding_ms: 300 } : null,
      },
      output: $("voice").value ? { voice: $("voice").value } : {},
    },
    tools: $("tool-demo").value ? [CALCULATOR] : [],
    tool_choice: $("tool-demo").value || "auto",
  };
  send({ type: "session.update", session });
}

// ---------- server events ----------

function onEvent(ev) {
  switch (ev.type) {
    case "input_audio_buffer.speech_started":
      interrupt(); // barge-in: the server cancels the reply, we stop what is still queued here
      setStatus("Listening", "listen");
      break;
    case "input_audio_buffer.committed":
      state.userBubbles.set(ev.item_id, bubble("user", "…", "pending"));
      setStatus("Thinking", "busy");
      break;
    case "conversation.item.input_audio_transcription.delta": {
      const el = state.userBubbles.get(ev.item_id); // the words as they are transcribed
      if (el) setText(el, (el.dataset.heard = (el.dataset.heard || "") + ev.delta));
      break;
    }
    case "conversation.item.input_audio_transcription.completed": {
      const el = state.userBubbles.get(ev.item_id);
      if (!el) break;
      if (ev.transcript.trim()) {
        setText(el, ev.transcript);
        el.classList.remove("pending");
      } else el.remove();
      break;
    }
    case "response.created":
      state.reply = null;
      state.toolOutputs = 0;
      break;
    case "response.output_item.added":
      if (ev.item?.type === "function_call") toolCard(ev.item);
      break;
    case "response.function_call_arguments.delta": {
      const card = state.toolCards.get(ev.item_id);
      if (card) setCardRow(card.el, "args", (card.args += ev.delta));
      break;
    }
    case "response.output_item.done":
      if (ev.item?.type === "function_call") runTool(ev.item);
      break;
    case "response.output_audio_transcript.delta":
    case "response.output_text.delta":
      if (!state.reply) state.reply = { itemId: ev.item_id, text: "", el: bubble("june"), started: null };
      state.reply.text += ev.delta;
      setText(state.reply.el, state.reply.text);
      setStatus("june is speaking", "speak");
      break;
    case "response.output_audio.delta":
      play(ev.delta);
      break;
    case "response.done": {
      stats.turns += 1;
      const r = ev.response;
      if (state.reply && r.status === "cancelled") {
        state.reply.el.classList.add("interrupted");
        const kept = r.output?.[0]?.content?.[0]?.transcript;
        if (kept !== undefined) setText(state.reply.el, kept || "…");
      }
      if (r.status === "failed") showBanner("june couldn't answer that one. Please try again.");
      state.reply = null;
      if (state.toolOutputs && r.status === "completed") {
        state.toolOutputs = 0;
        send({ type: "response.create" }); // june answers from the tool's result
        setStatus("Thinking", "busy");
        break;
      }
      if (!state.sources.length) setStatus(state.micOn ? "Listening" : "Connected", "ok");
      break;
    }
    case "error":
      if (ev.error.code === "invalid_api_key") {
        showBanner("This gateway wants an API key: enter it under Settings, then try again.");
        $("settings").open = true;
      } else showBanner(ev.error.message);
      break;
  }
}

// ---------- the demo tool ----------

const CALCULATOR = {
  type: "function",
  name: "calculate",
  description: "Work out an arithmetic expression with + - * / and parentheses, e.g. (12.5 + 3) * 4. Use it for any sum.",
  parameters: {
    type: "object",
    properties: { expression: { type: "string", description: "The expression, digits and + - * / ( ) only." } },
    required: ["expression"],
  },
};

// Evaluates + - * / and parentheses on decimal numbers with a small recursive-descent parser
// (never eval): at most 200 characters and 32 levels of nesting; throws Error with a reason.
function calculate(expression) {
  if (typeof expression !== "string" || !expression.trim()) throw new Error("expression must be a non-empty string");
  if (expression.length > 200) throw new Error("expression is longer than 200 characters");
  const tokens = expression.replace(/×/g, "*").replace(/÷/g, "/").replace(/−/g, "-").match(/\d+(?:\.\d+)?|\.\d+|[-+*/()]|\S/g) || [];
  let i = 0;
  const peek = () => tokens[i];
  const expr = (depth) => {
    if (depth > 32) throw new Error("expression is nested too deeply");
    let value = term(depth);
    while (peek() === "+" || peek() === "-") value = tokens[i++] === "+" ? value + term(depth) : value - term(depth);
    return value;
  };
  const term = (depth) => {
    let value = factor(depth);
    while (peek() === "*" || peek() === "/") {
      const op = tokens[i++];
      const right = factor(depth);
      if (op === "/" && right === 0) throw new Error("division by zero");
      value = op === "*" ? value * right : value / right;
    }
    return value;
  };
  const factor = (depth) => {
    const t = tokens[i++];
    if (t === "-") return -factor(depth + 1);
    if (t === "+") return factor(depth + 1);
    if (t === "(") {
      const value = expr(depth + 1);
      if (tokens[i++] !== ")") throw new Error("a parenthesis is not closed");
      return value;
    }
    if (t !== undefined && /^(\d|\.\d)/.test(t)) return parseFloat(t);
    throw new Error(t === undefined ? "the expression ends too soon" : `unexpected '${t}'`);
  };
  const value = expr(0);
  if (i < tokens.length) throw new Error(`unexpected '${tokens[i]}'`);
  if (!Number.isFinite(value)) throw new Error("the result is not a finite number");
  return Number(value.toPrecision(12));
}

const TOOLS = { calculate: (args) => ({ result: calculate(args.expression) }) };

function toolCard(item) {
  if (state.toolCards.has(item.id)) return state.toolCards.get(item.id);
  $("hint")?.remove();
  const el = document.createElement("div");
  el.className = "tool-card running";
  el.innerHTML =
    `<div class="tool-head"><span class="tool-icon" aria-hidden="true">ƒ</span><span class="tool-name"></span>` +
    `<span class="tool-state">running…</span></div>` +
    `<dl><dt>arguments</dt><dd class="args"></dd><dt>result</dt><dd class="result">…</dd></dl>`;
  el.querySelector(".tool-name").textContent = item.name || "tool";
  $("conversation").append(el);
  el.scrollIntoView({ block: "end", behavior: "smooth" });
  const card = { el, args: item.arguments || "" };
  setCardRow(el, "args", card.args);
  state.toolCards.set(item.id, card);
  setStatus(`Using ${item.name}`, "busy");
  return card;
}

function setCardRow(el, row, text) {
  el.querySelector(`.${row}`).textContent = text;
}

// Runs a finished function call here and sends its output; the answer is asked for at response.done.
function runTool(item) {
  const card = toolCard(item);
  card.args = item.arguments || "";
  let shown = card.args;
  let output;
  try {
    const args = JSON.parse(card.args || "{}");
    shown = Object.entries(args).map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ") || "—";
    const tool = TOOLS[item.name];
    if (!tool) throw new Error(`this page has no tool named ${item.name}`);
    output = tool(args);
  } catch (e) {
    output = { error: e.message };
  }
  setCardRow(card.el, "args", shown);
  setCardRow(card.el, "result", "error" in output ? `error: ${output.error}` : String(output.result));
  card.el.classList.remove("running");
  card.el.classList.toggle("failed", "error" in output);
  card.el.querySelector(".tool-state").textContent = "error" in output ? "failed" : "done";
  stats.toolCalls += 1;
  send({ type: "conversation.item.create", item: { type: "function_call_output", call_id: item.call_id, output: JSON.stringify(output) } });
  state.toolOutputs += 1;
}

// ---------- reply audio ----------

function play(b64) {
  if (!state.player) state.player = new AudioContext({ sampleRate: RATE });
  const ctx = state.player;
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const pcm = new Int16Array(bytes.buffer, 0, bytes.length >> 1);
  const buf = ctx.createBuffer(1, pcm.length, RATE);
  const ch = buf.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
  const src = ctx.createBufferSource();
  src.buffer = buf;
  src.connect(ctx.destination);
  const at = Math.max(ctx.currentTime + 0.05, state.playEnd);
  src.start(at);
  if (state.reply && state.reply.started === null) state.reply.started = at;
  state.playEnd = at + buf.duration;
  state.sources.push(src);
  stats.audioDeltas += 1;
  src.onended = () => {
    stats.samplesPlayed += pcm.length;
    state.sources = state.sources.filter((s) => s !== src);
    if (!state.sources.length && !state.reply) setStatus(state.micOn ? "Listening" : "Connected", "ok");
  };
}

function stopPlayback() {
  for (const s of state.sources) {
    try { s.stop(); } catch { /* already stopped */ }
  }
  state.sources = [];
  state.playEnd = 0;
}

function interrupt() {
  const r = state.reply;
  if (r && r.started !== null && state.player) {
    // Tell the server how much was really heard, so the conversation keeps only that.
    const heardMs = Math.max(0, Math.round((state.player.currentTime - r.started) * 1000));
    send({ type: "conversation.item.truncate", item_id: r.itemId, content_index: 0, audio_end_ms: heardMs });
  }
  stopPlayback();
}

// ---------- microphone ----------

async function startMic() {
  if (state.mic) return;
  if (!navigator.mediaDevices?.getUserMedia) throw new Error("This browser has no microphone access here (it needs https or localhost).");
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
  const ctx = new AudioContext();
  await ctx.audioWorklet.addModule("mic-worklet.js");
  const node = new AudioWorkletNode(ctx, "mic-processor");
  node.port.onmessage = (m) => {
    if (state.mode === "handsfree" ? state.micOn : state.pttDown) send({ type: "input_audio_buffer.append", audio: toBase64(m.data) });
  };
  ctx.createMediaStreamSource(stream).connect(node);
  state.mic = { ctx, stream, node };
}

function stopMic() {
  if (!state.mic) return;
  state.mic.stream.getTracks().forEach((t) => t.stop());
  state.mic.ctx.close();
  state.mic = null;
}

function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

async function micError(e) {
  state.micOn = state.pttDown = false;
  setMicUi();
  if (e.name === "NotAllowedError" || e.name === "SecurityError") {
    showBanner("Microphone access was refused. Allow it in the browser's site settings, or type your message below.");
  } else if (e.name === "NotFoundError") {
    showBanner("No microphone found. Plug one in, or type your message below.");
  } else if (e.message !== "unreachable") showBanner(e.message || String(e));
}

async function toggleHandsFree() {
  if (state.micOn) {
    state.micOn = false;
    stopMic();
    setMicUi();
    setStatus("Connected", "ok");
    return;
  }
  try {
    state.player ??= new AudioContext({ sampleRate: RATE }); // created on a click, so it may play
    await connect();
    await startMic();
    state.micOn = true;
    setMicUi();
    setStatus("Listening", "listen");
  } catch (e) {
    micError(e);
  }
}

async function pttPress() {
  if (state.pttDown) return;
  state.pttDown = true;
  setMicUi();
  try {
    state.player ??= new AudioContext({ sampleRate: RATE });
    await connect();
    await startMic();
    interrupt();
    if (state.reply) send({ type: "response.cancel" });
    send({ type: "input_audio_buffer.clear" });
    setStatus("Listening", "listen");
  } catch (e) {
    micError(e);
  }
}

function pttRelease() {
  if (!state.pttDown) return;
  state.pttDown = false;
  setMicUi();
  send({ type: "input_audio_buffer.commit" });
  send({ type: "response.create" });
}

// ---------- wiring ----------

$("mic").addEventListener("click", () => state.mode === "handsfree" && toggleHandsFree());
$("mic").addEventListener("pointerdown", () => state.mode === "ptt" && pttPress());
$("mic").addEventListener("pointerup", () => state.mode === "ptt" && pttRelease());
$("mic").addEventListener("pointerleave", () => state.mode === "ptt" && pttRelease());
document.addEventListener("keydown", (e) => {
  if (e.code === "Space" && state.mode === "ptt" && document.activeElement !== $("text") && !e.repeat) {
    e.preventDefault();
    pttPress();
  }
});
document.addEventListener("keyup", (e) => e.code === "Space" && state.mode === "ptt" && pttRelease());

for (const radio of document.querySelectorAll("input[name=mode]")) {
  radio.addEventListener("change", () => {
    state.mode = radio.value;
    state.micOn = state.pttDown = false;
    stopMic();
    setMicUi();
    sendSession();
  });
}

$("composer").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  try {
    state.player ??= new AudioContext({ sampleRate: RATE });
    await connect();
  } catch {
    return;
  }
  interrupt();
  if (state.reply) send({ type: "response.cancel" });
  $("text").value = "";
  bubble("user", text);
  send({ type: "conversation.item.create", item: { type: "message", role: "user", content: [{ type: "input_text", text }] } });
  send({ type: "response.create" });
  setStatus("Thinking", "busy");
});

$("key").value = localStorage.getItem("june-key") || "";
$("key").addEventListener("change", () => {
  localStorage.setItem("june-key", $("key").value.trim());
  state.ws?.close(1000);
});
$("voice").addEventListener("change", sendSession);
$("tool-demo").value = localStorage.getItem("june-tool-demo") || "";
$("tool-demo").addEventListener("change", () => {
  localStorage.setItem("june-tool-demo", $("tool-demo").value);
  sendSession();
});
setMicUi();
