/**
 * EDNS Client Subnet (RFC 7871): read the option a resolver sends, and build the one echoed back
 * with the scope prefix length that says how wide a network the answer holds for.
 */

export const ECS_OPTION_CODE = 8;

export interface ClientSubnet {
  family: 1 | 2;
  sourcePrefixLength: number;
  /** The address, zero-padded to full width, in text form. */
  address: string;
  /** The address bytes as sent (ceil(source / 8) of them). */
  addressBytes: Buffer;
}

export type EcsParse = { ok: true; subnet: ClientSubnet } | { ok: false; reason: string };

/**
 * Validates the option's data as RFC 7871 section 6 asks: a known family, a prefix within its width,
 * exactly ceil(prefix / 8) address bytes, and no bits set past the prefix. A failure is FORMERR.
 */
export function parseClientSubnet(data: Buffer): EcsParse {
  if (data.length < 4) return { ok: false, reason: 'ECS option shorter than 4 bytes' };
  const family = data.readUInt16BE(0);
  if (family !== 1 && family !== 2) return { ok: false, reason: `ECS family ${family} is not 1 or 2` };
  const width = family === 1 ? 32 : 128;
  const source = data.readUInt8(2);
  if (source > width) return { ok: false, reason: `ECS source prefix ${source} exceeds ${width}` };
  const bytes = data.subarray(4);
  if (bytes.length !== Math.ceil(source / 8)) {
    return { ok: false, reason: `ECS address has ${bytes.length} bytes for a /${source}` };
  }
  const spare = source % 8;
  const last = bytes[bytes.length - 1];
  if (spare !== 0 && last !== undefined && (last & (0xff >> spare)) !== 0) {
    return { ok: false, reason: 'ECS address has bits set past its source prefix' };
  }
  const full = Buffer.alloc(width / 8);
  bytes.copy(full);
  const address =
    family === 1
      ? Array.from(full).join('.')
      : Array.from({ length: 8 }, (_, i) => full.readUInt16BE(i * 2).toString(16)).join(':');
  return {
    ok: true,
    subnet: { family, sourcePrefixLength: source, address, addressBytes: Buffer.from(bytes) },
  };
}

/** The option data to echo: the query's family, source prefix and address, with our scope. */
export function echoClientSubnet(subnet: ClientSubnet, scopePrefixLength: number): Buffer {
  const out = Buffer.alloc(4 + subnet.addressBytes.length);
  out.writeUInt16BE(subnet.family, 0);
  out.writeUInt8(subnet.sourcePrefixLength, 2);
  out.writeUInt8(scopePrefixLength, 3);
  subnet.addressBytes.copy(out, 4);
  return out;
}
