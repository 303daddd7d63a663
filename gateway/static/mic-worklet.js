// AudioWorklet: microphone samples (the context's rate, float) → pcm16 mono 24 kHz, posted in 40 ms chunks.
const OUT_RATE = 24000;
const CHUNK = OUT_RATE / 25; // 960 samples = 40 ms

class MicProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / OUT_RATE; // input samples per output sample
    this.pos = 0; // fractional read position into `prev + input`
    this.prev = 0; // last input sample of the previous block (for interpolation across blocks)
    this.out = new Int16Array(CHUNK);
    this.n = 0;
  }

  process(inputs) {
    const input = inputs[0][0];
    if (!input) return true;
    // Linear interpolation; index -1 is the previous block's last sample.
    while (this.pos < input.length - 1) {
      const i = Math.floor(this.pos);
      const frac = this.pos - i;
      const a = i < 0 ? this.prev : input[i];
      const b = input[i + 1];
      const s = Math.max(-1, Math.min(1, a + (b - a) * frac));
      this.out[this.n++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.n === CHUNK) {
        this.port.postMessage(this.out.buffer, [this.out.buffer]);
        this.out = new Int16Array(CHUNK);
        this.n = 0;
      }
      this.pos += this.step;
    }
    this.pos -= input.length;
    this.prev = input[input.length - 1];
    return true;
  }
}

registerProcessor("mic-processor", MicProcessor);
