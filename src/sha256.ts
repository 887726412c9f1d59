// SHA-256 in plain JavaScript, for workspace ids only. Loading `node:crypto` costs about 4 ms of
// every CLI start (a third of `wsreg ls` beyond `node -e 0`), while this hashes a short path in ~4 µs
// (native: ~1.7 µs); paths.ts switches to native for long lists. Checked against node:crypto in the tests.

const K = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
])
const INITIAL = Int32Array.from([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19])
const w = new Int32Array(64)
const state = new Int32Array(8)
let message = new Uint8Array(1024)

function compress(at: number): void {
  for (let i = 0; i < 16; i++) {
    const j = at + i * 4
    w[i] = (message[j]! << 24) | (message[j + 1]! << 16) | (message[j + 2]! << 8) | message[j + 3]!
  }
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15]!
    const y = w[i - 2]!
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10)
    w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) | 0
  }
  let a = state[0]!, b = state[1]!, c = state[2]!, d = state[3]!, e = state[4]!, f = state[5]!, g = state[6]!, h = state[7]!
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))
    const t1 = (h + s1 + ((e & f) ^ (~e & g)) + K[i]! + w[i]!) | 0
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0
    h = g
    g = f
    f = e
    e = (d + t1) | 0
    d = c
    c = b
    b = a
    a = (t1 + t2) | 0
  }
  state[0] = (state[0]! + a) | 0
  state[1] = (state[1]! + b) | 0
  state[2] = (state[2]! + c) | 0
  state[3] = (state[3]! + d) | 0
  state[4] = (state[4]! + e) | 0
  state[5] = (state[5]! + f) | 0
  state[6] = (state[6]! + g) | 0
  state[7] = (state[7]! + h) | 0
}

function hex8(word: number): string {
  return (word >>> 0).toString(16).padStart(8, '0')
}

/** SHA-256 of the UTF-8 bytes of `text`, as lowercase hex, cut to its first `length` characters. */
export function sha256Hex(text: string, length = 64): string {
  let count = text.length
  if (message.length < count * 3 + 72) message = new Uint8Array(count * 3 + 72)
  let ascii = true
  for (let i = 0; i < count; i++) {
    const code = text.charCodeAt(i)
    if (code > 0x7f) {
      ascii = false
      break
    }
    message[i] = code
  }
  if (!ascii) count = Buffer.from(message.buffer, message.byteOffset, message.length).write(text, 0, 'utf8')
  const size = ((count + 9 + 63) >> 6) << 6 // message + 0x80 + 64-bit length, in whole blocks
  message.fill(0, count, size)
  message[count] = 0x80
  const bits = count * 8
  const high = Math.floor(bits / 0x1_0000_0000)
  message[size - 8] = high >>> 24
  message[size - 7] = high >>> 16
  message[size - 6] = high >>> 8
  message[size - 5] = high
  message[size - 4] = bits >>> 24
  message[size - 3] = bits >>> 16
  message[size - 2] = bits >>> 8
  message[size - 1] = bits
  state.set(INITIAL)
  for (let at = 0; at < size; at += 64) compress(at)
  let out = ''
  for (let i = 0; i < 8 && out.length < length; i++) out += hex8(state[i]!)
  return out.slice(0, length)
}
