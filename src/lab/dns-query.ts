/** A tiny DNS client for the lab: asks the GeoDNS server for A records over UDP, optionally with ECS. */
import { createSocket } from 'node:dgram';
import dnsPacket from 'dns-packet';

export interface DnsAnswer {
  rcode: string;
  addresses: string[];
}

/**
 * @example await queryA('127.0.0.1', 5353, 'app.meridian.test') // { rcode: 'NOERROR', addresses: ['127.0.1.1'] }
 */
export function queryA(
  host: string,
  port: number,
  name: string,
  opts: { clientSubnet?: string; timeoutMs?: number } = {},
): Promise<DnsAnswer> {
  const id = Math.floor(Math.random() * 65535);
  const packet: dnsPacket.Packet = {
    type: 'query',
    id,
    flags: 0,
    questions: [{ type: 'A', name }],
  };
  if (opts.clientSubnet) {
    const [ip, prefix] = opts.clientSubnet.split('/');
    const opt: dnsPacket.OptAnswer = {
      type: 'OPT',
      name: '.',
      udpPayloadSize: 1232,
      extendedRcode: 0,
      ednsVersion: 0,
      flags: 0,
      flag_do: false,
      options: [
        {
          code: 8 /* CLIENT_SUBNET */,
          family: 1,
          sourcePrefixLength: Number(prefix ?? 24),
          scopePrefixLength: 0,
          ip: ip ?? '',
        },
      ],
    };
    packet.additionals = [opt];
  }
  const buf = dnsPacket.encode(packet);
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error(`no DNS answer from ${host}:${port} within ${opts.timeoutMs ?? 1000} ms`));
    }, opts.timeoutMs ?? 1000);
    sock.on('message', (msg) => {
      const res = dnsPacket.decode(msg) as dnsPacket.DecodedPacket & { rcode?: string };
      if (res.id !== id) return;
      clearTimeout(timer);
      sock.close();
      resolve({
        rcode: res.rcode ?? 'NOERROR',
        addresses: (res.answers ?? []).flatMap((a) => (a.type === 'A' ? [String(a.data)] : [])),
      });
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      sock.close();
      reject(e);
    });
    sock.send(buf, port, host);
  });
}
