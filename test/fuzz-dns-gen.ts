/** DNS messages for the fuzzing suite: pure noise, or a valid ECS query with a few bytes changed. */
import * as packet from 'dns-packet';

const VALID = packet.encode({
  type: 'query',
  id: 7,
  flags: packet.RECURSION_DESIRED,
  questions: [{ name: 'app.meridian.test', type: 'A' }],
  additionals: [
    {
      type: 'OPT',
      name: '.',
      udpPayloadSize: 1232,
      options: [{ code: 'CLIENT_SUBNET', ip: '81.2.69.0', sourcePrefixLength: 24 }],
    } as never,
  ],
});

/** Half pure noise, half a valid query with a few bytes changed (reaches deeper into the parser). */
export function randomDnsMessage(rnd: () => number): Buffer {
  if (rnd() < 0.5) {
    const len = Math.floor(rnd() * 300);
    return Buffer.from(Array.from({ length: len }, () => Math.floor(rnd() * 256)));
  }
  const b = Buffer.from(VALID);
  const edits = 1 + Math.floor(rnd() * 4);
  for (let i = 0; i < edits; i++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
  const cut = rnd() < 0.2 ? Math.floor(rnd() * b.length) : b.length;
  return b.subarray(0, cut);
}

/** What the server must do with it: answer unless it is a runt or has the QR bit. */
export const expectsDnsReply = (m: Buffer) => m.length >= 12 && ((m[2] ?? 0) & 0x80) === 0;
