/**
 * HPACK codec: the RFC 7541 Appendix C vectors, the Huffman code's own soundness, a round-trip
 * property over random header lists and table size changes, interop with nghttp2 (through
 * node:http2) in both directions, coding errors and header list limits.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import fc from 'fast-check';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { HpackDecoder } from '../sidecar/h2/hpack/decoder.js';
import type { HeaderLimits } from '../sidecar/h2/hpack/decoder.js';
import { HpackEncoder } from '../sidecar/h2/hpack/encoder.js';
import { HpackError } from '../sidecar/h2/hpack/errors.js';
import { HUFFMAN_CODES, HUFFMAN_LENGTHS, decodeHuffman, encodeHuffman, huffmanLength } from '../sidecar/h2/hpack/huffman.js';
import { STATIC_NAMES, STATIC_TABLE_LENGTH, STATIC_VALUES } from '../sidecar/h2/hpack/static-table.js';
import { frame } from './harness/raw-h2.js';

const NO_LIMITS: HeaderLimits = { maxHeaderListBytes: Number.MAX_SAFE_INTEGER, maxHeaderListPairs: Number.MAX_SAFE_INTEGER };

/** Hex as the RFC prints it: spaces and line breaks allowed. */
function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

function pairsOf(fields: readonly string[]): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i < fields.length; i += 2) pairs.push([fields[i]!, fields[i + 1]!]);
  return pairs;
}

function huffman(value: string): Buffer {
  const out = Buffer.alloc(huffmanLength(value) + 8);
  return out.subarray(0, encodeHuffman(value, out, 0));
}

function latin1OfAllOctets(): string {
  let value = '';
  for (let octet = 0; octet < 256; octet++) value += String.fromCharCode(octet);
  return value;
}

// ---------------------------------------------------------------------------------------------
// Static table and Huffman code

test('static table: 61 entries as RFC 7541 Appendix A lists them', (t) => {
  t.is(STATIC_TABLE_LENGTH, 61);
  t.is(STATIC_NAMES.length, 62);
  t.deepEqual([STATIC_NAMES[1], STATIC_VALUES[1]], [':authority', '']);
  t.deepEqual([STATIC_NAMES[2], STATIC_VALUES[2]], [':method', 'GET']);
  t.deepEqual([STATIC_NAMES[7], STATIC_VALUES[7]], [':scheme', 'https']);
  t.deepEqual([STATIC_NAMES[14], STATIC_VALUES[14]], [':status', '500']);
  t.deepEqual([STATIC_NAMES[16], STATIC_VALUES[16]], ['accept-encoding', 'gzip, deflate']);
  t.deepEqual([STATIC_NAMES[31], STATIC_VALUES[31]], ['content-type', '']);
  t.deepEqual([STATIC_NAMES[58], STATIC_VALUES[58]], ['user-agent', '']);
  t.deepEqual([STATIC_NAMES[61], STATIC_VALUES[61]], ['www-authenticate', '']);
});

test('Huffman code: 257 symbols, EOS = 0x3fffffff/30, a complete canonical prefix code', (t) => {
  t.is(HUFFMAN_CODES.length, 257);
  t.is(HUFFMAN_LENGTHS.length, 257);
  t.is(HUFFMAN_CODES[256], 0x3fffffff);
  t.is(HUFFMAN_LENGTHS[256], 30);
  // Kraft sum exactly 1, in integers: sum of 2^(30 - length) == 2^30.
  let kraft = 0;
  for (const length of HUFFMAN_LENGTHS) kraft += 2 ** (30 - length);
  t.is(kraft, 2 ** 30);
  // Canonical: ordered by (length, symbol), each code is the previous one plus one, shifted left
  // to the new length. A slip in any code or length of the transcribed table breaks this chain.
  const order = [...HUFFMAN_CODES.keys()].sort((a, b) => HUFFMAN_LENGTHS[a]! - HUFFMAN_LENGTHS[b]! || a - b);
  let expected = 0;
  let previousLength = HUFFMAN_LENGTHS[order[0]!]!;
  for (const [rank, symbol] of order.entries()) {
    const length = HUFFMAN_LENGTHS[symbol]!;
    if (rank > 0) expected = (expected + 1) * 2 ** (length - previousLength);
    previousLength = length;
    if (HUFFMAN_CODES[symbol] !== expected) return t.fail(`symbol ${symbol}: code ${HUFFMAN_CODES[symbol]} is not canonical (${expected})`);
    if (HUFFMAN_CODES[symbol]! >= 2 ** length) return t.fail(`symbol ${symbol}: code wider than its length`);
  }
  t.pass();
});

test('Huffman: the RFC 7541 Appendix C.4 / C.6 string codings', (t) => {
  const vectors: Array<[string, string]> = [
    ['www.example.com', 'f1e3 c2e5 f23a 6ba0 ab90 f4ff'],
    ['no-cache', 'a8eb 1064 9cbf'],
    ['custom-key', '25a8 49e9 5ba9 7d7f'],
    ['custom-value', '25a8 49e9 5bb8 e8b4 bf'],
    ['302', '6402'],
    ['307', '640e ff'],
    ['private', 'aec3 771a 4b'],
    ['Mon, 21 Oct 2013 20:13:21 GMT', 'd07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff'],
    ['https://www.example.com', '9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3'],
    ['gzip', '9bd9 ab'],
    ['foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1',
      '94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07'],
  ];
  for (const [text, coded] of vectors) {
    t.is(huffman(text).toString('hex'), hex(coded).toString('hex'), text);
    const bytes = hex(coded);
    t.is(decodeHuffman(bytes, 0, bytes.length), text);
  }
});

test('Huffman: every octet value round-trips, alone and together', (t) => {
  for (let octet = 0; octet < 256; octet++) {
    const value = String.fromCharCode(octet);
    const coded = huffman(value);
    t.is(coded.length, Math.ceil(HUFFMAN_LENGTHS[octet]! / 8));
    t.is(decodeHuffman(coded, 0, coded.length), value, `octet ${octet}`);
  }
  const all = latin1OfAllOctets();
  const coded = huffman(all);
  t.is(decodeHuffman(coded, 0, coded.length), all);
  t.is(decodeHuffman(Buffer.alloc(0), 0, 0), '');
});

test('Huffman: random latin1 strings round-trip, also at an offset inside a larger buffer', (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(8), (octets, offset) => {
    const value = Buffer.from(octets).toString('latin1');
    const out = Buffer.alloc(offset + huffmanLength(value) + 4, 0xaa);
    const end = encodeHuffman(value, out, offset);
    if (end !== offset + huffmanLength(value)) throw new Error(`wrote ${end - offset} octets, sized ${huffmanLength(value)}`);
    if (decodeHuffman(out, offset, end) !== value) throw new Error('round trip differs');
  }), { seed: 7541, numRuns: 500 });
  t.pass();
});

test('Huffman: EOS, padding longer than 7 bits and padding that is not all ones are rejected', (t) => {
  const rejects = (text: string, message: RegExp) => {
    const bytes = hex(text);
    t.throws(() => decodeHuffman(bytes, 0, bytes.length), { instanceOf: HpackError, message }, text);
  };
  rejects('ffff ffff', /EOS/); // EOS (30 ones) then 2 padding bits
  rejects('1fff ffff ff', /EOS/); // 'a' (00011) then EOS
  rejects('ff', /longer than 7 bits/); // 8 bits of padding, no symbol
  rejects('1f ff', /longer than 7 bits/); // 'a' then 11 one bits
  rejects('18', /not all ones/); // 'a' then 000
  rejects('1e', /not all ones/); // 'a' then 110
  t.is(decodeHuffman(hex('1f'), 0, 1), 'a'); // 'a' then 111: valid
  // The same errors surface from the decoder: a literal whose Huffman value pads with zeros.
  t.throws(() => new HpackDecoder().decode(hex('00 0161 8118'), NO_LIMITS), { instanceOf: HpackError });
});

// ---------------------------------------------------------------------------------------------
// RFC 7541 Appendix C

interface Step {
  readonly block: string;
  readonly fields: Array<[string, string]>;
  readonly table: Array<[string, string]>;
  readonly size: number;
}

/** The block as a view into a larger buffer, as frame payloads are: offsets must be relative. */
function embedded(block: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0xaa, 0xbb]), block, Buffer.from([0xcc])]).subarray(2, 2 + block.length);
}

function runSteps(t: ExecutionContext, decoder: HpackDecoder, steps: readonly Step[]): void {
  for (const [i, step] of steps.entries()) {
    const { fields, tooLarge } = decoder.decode(embedded(hex(step.block)), NO_LIMITS);
    t.false(tooLarge);
    t.deepEqual(pairsOf(fields), step.fields, `block ${i + 1}: fields`);
    t.deepEqual(decoder.dynamicEntries(), step.table, `block ${i + 1}: dynamic table`);
    t.is(decoder.dynamicSize, step.size, `block ${i + 1}: table size`);
  }
}

test('C.1: integers (1337 on a 5-bit prefix, as a table size update)', (t) => {
  t.notThrows(() => new HpackDecoder(1337).decode(hex('3f9a0a'), NO_LIMITS));
  t.throws(() => new HpackDecoder(1336).decode(hex('3f9a0a'), NO_LIMITS), { instanceOf: HpackError });
});

test('C.2: literal with indexing, without indexing, never indexed; indexed', (t) => {
  runSteps(t, new HpackDecoder(), [{
    block: '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572',
    fields: [['custom-key', 'custom-header']], table: [['custom-key', 'custom-header']], size: 55,
  }]);
  runSteps(t, new HpackDecoder(), [{ block: '040c 2f73 616d 706c 652f 7061 7468', fields: [[':path', '/sample/path']], table: [], size: 0 }]);
  runSteps(t, new HpackDecoder(), [{ block: '1008 7061 7373 776f 7264 0673 6563 7265 74', fields: [['password', 'secret']], table: [], size: 0 }]);
  runSteps(t, new HpackDecoder(), [{ block: '82', fields: [[':method', 'GET']], table: [], size: 0 }]);
});

const REQUEST_1: Array<[string, string]> = [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']];
const REQUEST_2: Array<[string, string]> = [...REQUEST_1, ['cache-control', 'no-cache']];
const REQUEST_3: Array<[string, string]> = [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']];
const REQUEST_TABLES: Array<Array<[string, string]>> = [
  [[':authority', 'www.example.com']],
  [['cache-control', 'no-cache'], [':authority', 'www.example.com']],
  [['custom-key', 'custom-value'], ['cache-control', 'no-cache'], [':authority', 'www.example.com']],
];

test('C.3: three requests without Huffman on one decoder', (t) => {
  runSteps(t, new HpackDecoder(), [
    { block: '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', fields: REQUEST_1, table: REQUEST_TABLES[0]!, size: 57 },
    { block: '8286 84be 5808 6e6f 2d63 6163 6865', fields: REQUEST_2, table: REQUEST_TABLES[1]!, size: 110 },
    { block: '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65', fields: REQUEST_3, table: REQUEST_TABLES[2]!, size: 164 },
  ]);
});

test('C.4: three requests with Huffman on one decoder', (t) => {
  runSteps(t, new HpackDecoder(), [
    { block: '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', fields: REQUEST_1, table: REQUEST_TABLES[0]!, size: 57 },
    { block: '8286 84be 5886 a8eb 1064 9cbf', fields: REQUEST_2, table: REQUEST_TABLES[1]!, size: 110 },
    { block: '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf', fields: REQUEST_3, table: REQUEST_TABLES[2]!, size: 164 },
  ]);
});

const DATE_21 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const DATE_22 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const LOCATION = 'https://www.example.com';
const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
const RESPONSE_1: Array<[string, string]> = [[':status', '302'], ['cache-control', 'private'], ['date', DATE_21], ['location', LOCATION]];
const RESPONSE_2: Array<[string, string]> = [[':status', '307'], ['cache-control', 'private'], ['date', DATE_21], ['location', LOCATION]];
const RESPONSE_3: Array<[string, string]> = [[':status', '200'], ['cache-control', 'private'], ['date', DATE_22], ['location', LOCATION], ['content-encoding', 'gzip'], ['set-cookie', COOKIE]];
const RESPONSE_TABLES: Array<Array<[string, string]>> = [
  [['location', LOCATION], ['date', DATE_21], ['cache-control', 'private'], [':status', '302']],
  [[':status', '307'], ['location', LOCATION], ['date', DATE_21], ['cache-control', 'private']],
  [['set-cookie', COOKIE], ['content-encoding', 'gzip'], ['date', DATE_22]],
];

test('C.5: three responses without Huffman, table size 256, with evictions', (t) => {
  runSteps(t, new HpackDecoder(256), [
    {
      block: `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
              2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`,
      fields: RESPONSE_1, table: RESPONSE_TABLES[0]!, size: 222,
    },
    { block: '4803 3330 37c1 c0bf', fields: RESPONSE_2, table: RESPONSE_TABLES[1]!, size: 222 },
    {
      block: `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
              54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
              5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31`,
      fields: RESPONSE_3, table: RESPONSE_TABLES[2]!, size: 215,
    },
  ]);
});

test('C.6: three responses with Huffman, table size 256, with evictions', (t) => {
  runSteps(t, new HpackDecoder(256), [
    {
      block: `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
              2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
      fields: RESPONSE_1, table: RESPONSE_TABLES[0]!, size: 222,
    },
    { block: '4883 640e ffc1 c0bf', fields: RESPONSE_2, table: RESPONSE_TABLES[1]!, size: 222 },
    {
      block: `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
              77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
              9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
      fields: RESPONSE_3, table: RESPONSE_TABLES[2]!, size: 215,
    },
  ]);
});

// ---------------------------------------------------------------------------------------------
// Encoder policy

const GRPC_REQUEST = [
  ':method', 'POST', ':scheme', 'http', ':path', '/helloworld.Greeter/SayHello', ':authority', 'greeter.default.svc:50051',
  'content-type', 'application/grpc', 'te', 'trailers', 'user-agent', 'grpc-node-js/1.14.7',
  'grpc-accept-encoding', 'identity,deflate,gzip', 'grpc-timeout', '99m', 'x-request-id', '4bf92f3577b34da6a3ce929d0e0e4736',
];

test('encoder: repeating gRPC request fields are indexed once, per-call values are not', (t) => {
  const encoder = new HpackEncoder();
  const decoder = new HpackDecoder();
  const nextCall = [...GRPC_REQUEST];
  nextCall[17] = '98m';
  nextCall[19] = '00f067aa0ba902b7a3ce929d0e0e4736';
  const first = Buffer.from(encoder.encode(GRPC_REQUEST));
  const second = Buffer.from(encoder.encode(nextCall));
  t.deepEqual(decoder.decode(first, NO_LIMITS).fields, GRPC_REQUEST);
  t.deepEqual(decoder.decode(second, NO_LIMITS).fields, nextCall);
  // The repeating fields, plus the first grpc-timeout and x-request-id so that their names can
  // be referred to; their new values in the second call were not added.
  t.deepEqual(encoder.dynamicEntries(), [
    ['x-request-id', GRPC_REQUEST[19]!], ['grpc-timeout', '99m'], ['grpc-accept-encoding', 'identity,deflate,gzip'],
    ['user-agent', 'grpc-node-js/1.14.7'], ['te', 'trailers'], ['content-type', 'application/grpc'],
    [':authority', 'greeter.default.svc:50051'], [':path', '/helloworld.Greeter/SayHello'],
  ]);
  t.deepEqual(decoder.dynamicEntries(), encoder.dynamicEntries());
  // Static :method and :scheme, six dynamic indexes, then two literals without indexing whose
  // names are dynamic indexes 63 and 62 (4-bit prefix: 0x0f, 63 - 15 = 48 and 47).
  t.deepEqual([...second.subarray(0, 8)], [0x83, 0x86, 0xc5, 0xc4, 0xc3, 0xc2, 0xc1, 0xc0]);
  t.deepEqual([...second.subarray(8, 10)], [0x0f, 48]);
  const timeoutLength = second[10]! & 0x7f;
  t.deepEqual([...second.subarray(11 + timeoutLength, 13 + timeoutLength)], [0x0f, 47]);
  t.true(second.length < 40, `second block is ${second.length} octets`);
  // An identical call is ten one-octet indexes.
  t.is(encoder.encode(GRPC_REQUEST).length, 10);
});

test('encoder: sensitive and unknown names are never indexed; long cookies and long values are not indexed', (t) => {
  const encoder = new HpackEncoder();
  // authorization is static 23: never-indexed (0001) with a 4-bit prefix, 15 + 8.
  t.deepEqual([...encoder.encode(['authorization', 'Bearer abc']).subarray(0, 2)], [0x1f, 0x08]);
  t.deepEqual([...encoder.encode(['proxy-authorization', 'Basic abc']).subarray(0, 2)], [0x1f, 49 - 15]);
  t.deepEqual([...encoder.encode(['cookie', 'a=1']).subarray(0, 2)], [0x1f, 32 - 15]);
  t.deepEqual([...encoder.encode(['cookie', 'session=0123456789abcdef']).subarray(0, 2)], [0x0f, 32 - 15]);
  // Unknown names are never indexed, not even their first value: it could be a credential.
  t.deepEqual([...encoder.encode(['x-api-key', 'k']).subarray(0, 2)], [0x00, 0x87]);
  // Nor a 1025-octet :authority, a static-table name (date), or a grpc-message too big to learn.
  encoder.encode([':authority', 'x'.repeat(1025), 'date', 'Mon, 21 Oct 2013 20:13:21 GMT', 'grpc-message', 'm'.repeat(600)]);
  t.deepEqual(encoder.dynamicEntries(), []);
  t.is(encoder.dynamicSize, 0);
});

test('encoder: a new peer table size is announced at the start of the next block, dips included', (t) => {
  const encoder = new HpackEncoder();
  const decoder = new HpackDecoder(4096);
  decoder.decode(Buffer.from(encoder.encode([':path', '/a', ':authority', 'a'])), NO_LIMITS);
  t.is(encoder.dynamicEntries().length, 2);

  encoder.setMaxTableSize(4096); // unchanged: no update
  let block = Buffer.from(encoder.encode(['te', 'trailers']));
  t.is(block[0]! & 0xc0, 0x40);
  decoder.decode(block, NO_LIMITS);

  encoder.setMaxTableSize(256);
  block = Buffer.from(encoder.encode([':method', 'GET']));
  t.deepEqual([...block], [0x3f, 0xe1, 0x01, 0x82]); // 256 = 31 + 225; 225 = 0x61 | 0x80, 1
  decoder.decode(block, NO_LIMITS);

  encoder.setMaxTableSize(0);
  encoder.setMaxTableSize(4096);
  block = Buffer.from(encoder.encode([':method', 'GET']));
  t.deepEqual([...block], [0x20, 0x3f, 0xe1, 0x1f, 0x82]); // 0, then 4096
  decoder.decode(block, NO_LIMITS);
  t.deepEqual(encoder.dynamicEntries(), []);
  t.deepEqual(decoder.dynamicEntries(), []);

  encoder.setMaxTableSize(1 << 20); // more than we ever use: announce our 4096 cap
  block = Buffer.from(encoder.encode([':method', 'GET']));
  t.deepEqual([...block], [0x3f, 0xe1, 0x1f, 0x82]);
  t.throws(() => encoder.setMaxTableSize(-1), { instanceOf: RangeError });
  t.throws(() => encoder.encode([':method']), { instanceOf: RangeError });
});

test('encoder: the dynamic table evicts oldest first and never exceeds its size', (t) => {
  const encoder = new HpackEncoder();
  const decoder = new HpackDecoder();
  encoder.setMaxTableSize(200);
  for (let i = 0; i < 50; i++) {
    const fields = [':path', `/svc/method-${i}`, ':authority', `host-${i % 3}`, 'user-agent', 'ua'];
    t.deepEqual(decoder.decode(Buffer.from(encoder.encode(fields)), NO_LIMITS).fields, fields);
    t.true(encoder.dynamicSize <= 200);
    t.deepEqual(decoder.dynamicEntries(), encoder.dynamicEntries());
    t.is(decoder.dynamicSize, encoder.dynamicSize);
  }
});

test('encoder and decoder: every latin1 octet in names and values round-trips, raw and Huffman', (t) => {
  const all = latin1OfAllOctets();
  const fields = ['x-all', all, all.slice(0, 40), 'v', 'x-high', '\u00ff\u00fe\u0080', 'x-empty', ''];
  const encoder = new HpackEncoder();
  const decoder = new HpackDecoder();
  for (let i = 0; i < 2; i++) t.deepEqual(decoder.decode(Buffer.from(encoder.encode(fields)), NO_LIMITS).fields, fields);
});

// ---------------------------------------------------------------------------------------------
// Round-trip property

const KNOWN_NAMES = [
  ':authority', ':path', ':method', ':scheme', ':status', 'content-type', 'te', 'user-agent', 'grpc-timeout',
  'grpc-status', 'grpc-message', 'grpc-encoding', 'authorization', 'cookie', 'x-request-id', 'accept-encoding',
];
const KNOWN_VALUES = ['', 'GET', 'POST', '/', '200', '404', 'application/grpc', 'trailers', 'gzip, deflate', 'http'];

const latin1 = (maxLength: number) => fc.uint8Array({ maxLength }).map((octets) => Buffer.from(octets).toString('latin1'));
const headerName = fc.oneof(fc.constantFrom(...KNOWN_NAMES), latin1(12));
const headerValue = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...KNOWN_VALUES) },
  { weight: 5, arbitrary: latin1(40) },
  { weight: 1, arbitrary: latin1(1500) },
);
const headerList = fc.array(fc.tuple(headerName, headerValue), { maxLength: 16 }).map((pairs) => pairs.flat());

type Operation = { readonly kind: 'block'; readonly fields: string[] } | { readonly kind: 'repeat' } | { readonly kind: 'size'; readonly size: number };

const operation: fc.Arbitrary<Operation> = fc.oneof(
  { weight: 6, arbitrary: headerList.map((fields) => ({ kind: 'block' as const, fields })) },
  { weight: 3, arbitrary: fc.constant({ kind: 'repeat' as const }) },
  { weight: 2, arbitrary: fc.nat(9000).map((size) => ({ kind: 'size' as const, size })) },
);

test('round trip: random header lists over many blocks and table size changes decode to what was encoded', (t) => {
  let blocks = 0;
  fc.assert(fc.property(
    fc.constantFrom(0, 64, 256, 1024, 4096, 8192),
    fc.array(operation, { minLength: 1, maxLength: 30 }),
    (decoderMax, operations) => {
      const encoder = new HpackEncoder();
      const decoder = new HpackDecoder(decoderMax);
      // The peer learns our setting from SETTINGS before its first block.
      encoder.setMaxTableSize(decoderMax);
      let previous: string[] = [];
      for (const op of operations) {
        if (op.kind === 'size') {
          encoder.setMaxTableSize(Math.min(op.size, decoderMax));
          continue;
        }
        const fields = op.kind === 'block' ? op.fields : previous;
        previous = fields;
        const { fields: decoded, tooLarge } = decoder.decode(Buffer.from(encoder.encode(fields)), NO_LIMITS);
        blocks++;
        if (tooLarge) throw new Error('tooLarge without limits');
        assertSame(decoded, fields, 'fields');
        assertSame(decoder.dynamicEntries(), encoder.dynamicEntries(), 'dynamic tables');
        if (decoder.dynamicSize !== encoder.dynamicSize) throw new Error(`table sizes ${decoder.dynamicSize} != ${encoder.dynamicSize}`);
        if (encoder.dynamicSize > Math.min(decoderMax, 4096)) throw new Error(`encoder table ${encoder.dynamicSize} over its limit`);
      }
    },
  ), { seed: 0x7541, numRuns: 300 });
  t.log(`${blocks} blocks round-tripped`);
  t.true(blocks > 1000);
});

function assertSame(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what} differ:\n${a}\n${e}`);
}

// ---------------------------------------------------------------------------------------------
// Errors and limits

test('decoder errors: truncation, index 0, index out of range, integer overflow, bad size updates', (t) => {
  const rejects = (block: string, maxTableSize = 4096) => {
    t.throws(() => new HpackDecoder(maxTableSize).decode(hex(block), NO_LIMITS), { instanceOf: HpackError }, block);
  };
  // Truncated: a literal name cut short, a missing value, an integer missing its continuation.
  rejects('400a 6375 7374');
  rejects('41');
  rejects('400a 6375 7374 6f6d 2d6b 6579');
  rejects('ff');
  rejects('3f');
  rejects('4103 6162');
  // Index 0, and indexes past the static table into an empty dynamic table.
  rejects('80');
  rejects('be');
  rejects('7f00 0161'); // literal with indexed name 63
  rejects('0f30 0161'); // literal without indexing, name index 63
  // Integers: over 2^31, and a run of continuation octets.
  rejects('ff ffff ffff 0f');
  rejects('ff 8080 8080 8080 00');
  rejects('3f ffff ffff 7f');
  // Size updates: above the advertised maximum, after a field, more than two.
  rejects('3fe2 1f');
  rejects('3fe1 1f', 4095);
  rejects('8220');
  rejects('2020 20');
  const decoder = new HpackDecoder();
  t.deepEqual(decoder.decode(hex('2020 82'), NO_LIMITS).fields, [':method', 'GET']);
  t.deepEqual(decoder.decode(hex('3fe1 1f 82'), NO_LIMITS).fields, [':method', 'GET']);
});

test('limits: an oversized list reports tooLarge, still updates the table, and the next block decodes', (t) => {
  const decoder = new HpackDecoder();
  const literal = hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'); // custom-key: custom-header (55)
  const result = decoder.decode(literal, { maxHeaderListBytes: 54, maxHeaderListPairs: 100 });
  t.true(result.tooLarge);
  t.deepEqual(result.fields, []);
  t.deepEqual(decoder.dynamicEntries(), [['custom-key', 'custom-header']]);
  t.deepEqual(decoder.decode(hex('be'), NO_LIMITS), { fields: ['custom-key', 'custom-header'], tooLarge: false });

  // Exactly at the byte limit passes: :method GET is 7 + 3 + 32.
  t.false(decoder.decode(hex('82'), { maxHeaderListBytes: 42, maxHeaderListPairs: 1 }).tooLarge);
  t.true(decoder.decode(hex('82'), { maxHeaderListBytes: 41, maxHeaderListPairs: 1 }).tooLarge);
  const pairs = decoder.decode(hex('8286 84be'), { maxHeaderListBytes: 1e6, maxHeaderListPairs: 2 });
  t.true(pairs.tooLarge);
  t.deepEqual(pairs.fields, [':method', 'GET', ':scheme', 'http']);
  // Coding errors still throw after the limit was crossed, a late size update included.
  t.throws(() => decoder.decode(hex('8286 80'), { maxHeaderListBytes: 1e6, maxHeaderListPairs: 1 }), { instanceOf: HpackError });
  t.throws(() => decoder.decode(hex('82 20'), { maxHeaderListBytes: 1, maxHeaderListPairs: 1 }), { instanceOf: HpackError });
});

// ---------------------------------------------------------------------------------------------
// Interop with nghttp2 through node:http2, on a raw socket

const FRAME_DATA = 0x0;
const FRAME_HEADERS = 0x1;
const FRAME_SETTINGS = 0x4;
const FRAME_GOAWAY = 0x7;
const FRAME_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
const MAX_FRAME_SIZE = 16384;

/** HEADERS plus as many CONTINUATION frames as the block needs. */
function headerFrames(streamId: number, block: Buffer, endStream: boolean): Buffer[] {
  const frames: Buffer[] = [];
  for (let offset = 0; offset === 0 || offset < block.length; offset += MAX_FRAME_SIZE) {
    const chunk = block.subarray(offset, offset + MAX_FRAME_SIZE);
    const last = offset + MAX_FRAME_SIZE >= block.length;
    const type = offset === 0 ? FRAME_HEADERS : FRAME_CONTINUATION;
    const flags = (last ? FLAG_END_HEADERS : 0) | (offset === 0 && endStream ? FLAG_END_STREAM : 0);
    frames.push(frame(type, flags, streamId, chunk));
  }
  return frames;
}

interface ReceivedBlock { readonly streamId: number; readonly fields: Array<[string, string]>; readonly endStream: boolean }

/** Reads frames off the socket, joins header blocks and decodes them in connection order. */
class FrameReader {
  readonly blocks: ReceivedBlock[] = [];
  readonly frameFlags: Array<{ type: number; flags: number }> = [];
  goaway: Buffer | undefined;
  private pending = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private blockStream = 0;
  private blockEndsStream = false;

  constructor(private readonly socket: net.Socket, private readonly decoder: HpackDecoder, private readonly onChange: () => void) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
  }

  private receive(chunk: Buffer): void {
    this.pending = Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 9) {
      const length = this.pending.readUIntBE(0, 3);
      if (this.pending.length < 9 + length) break;
      const type = this.pending[3]!;
      const flags = this.pending[4]!;
      const streamId = this.pending.readUInt32BE(5) & 0x7fffffff;
      const payload = this.pending.subarray(9, 9 + length);
      this.pending = this.pending.subarray(9 + length);
      this.frameFlags.push({ type, flags });
      this.onFrame(type, flags, streamId, payload);
    }
    this.onChange();
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (type === FRAME_SETTINGS && (flags & FLAG_ACK) === 0) this.socket.write(frame(FRAME_SETTINGS, FLAG_ACK, 0, Buffer.alloc(0)));
    if (type === FRAME_GOAWAY) this.goaway = Buffer.from(payload);
    if (type === FRAME_HEADERS) {
      let start = 0;
      let end = payload.length;
      if ((flags & FLAG_PADDED) !== 0) {
        start = 1;
        end -= payload[0]!;
      }
      if ((flags & FLAG_PRIORITY) !== 0) start += 5;
      this.blockStream = streamId;
      this.blockEndsStream = (flags & FLAG_END_STREAM) !== 0;
      this.fragments = [Buffer.from(payload.subarray(start, end))];
    } else if (type === FRAME_CONTINUATION) {
      this.fragments.push(Buffer.from(payload));
    } else {
      return;
    }
    if ((flags & FLAG_END_HEADERS) === 0) return;
    const { fields, tooLarge } = this.decoder.decode(Buffer.concat(this.fragments), NO_LIMITS);
    if (tooLarge) throw new Error('tooLarge without limits');
    this.blocks.push({ streamId: this.blockStream, fields: pairsOf(fields), endStream: this.blockEndsStream });
  }
}

/** What node says it sent, as sorted pairs (node adds date; :status is a number there). */
function sentPairs(headers: http2.OutgoingHttpHeaders | undefined): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) pairs.push([name, String(one)]);
  }
  return pairs.sort(comparePairs);
}

function comparePairs(a: [string, string], b: [string, string]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
}

test('interop: nghttp2 decodes our blocks and we decode nghttp2\'s, over three streams', async (t) => {
  const server = http2.createServer({ paddingStrategy: http2.constants.PADDING_STRATEGY_MAX });
  const requests: Array<{ raw: string[]; sensitive: unknown }> = [];
  const sent: Array<{ headers: Array<[string, string]>; trailers: Array<[string, string]> }> = [];
  const serverErrors: string[] = [];
  const bigResponseValue = 'y'.repeat(20000);
  server.on('sessionError', (error) => serverErrors.push(String(error)));
  // node passes the raw name/value list as a fourth argument that @types/node leaves out.
  server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders?: string[]) => {
    const index = requests.length;
    requests.push({ raw: rawHeaders ?? [], sensitive: (headers as Record<symbol, unknown>)[http2.sensitiveHeaders] });
    stream.on('error', (error: Error) => serverErrors.push(String(error)));
    const responseHeaders: http2.OutgoingHttpHeaders = {
      ':status': 200, 'content-type': 'application/grpc', 'grpc-accept-encoding': 'identity,gzip', 'x-response-id': `r-${index}`,
      'x-server-latin1': 'caf\u00e9',
    };
    if (index === 2) responseHeaders['x-big'] = bigResponseValue;
    stream.respond(responseHeaders, { waitForTrailers: true });
    stream.on('wantTrailers', () => {
      stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': `ok ${index}`, 'x-trailer': 'tail' });
    });
    stream.on('close', () => {
      sent[index] = { headers: sentPairs(stream.sentHeaders), trailers: sentPairs(stream.sentTrailers) };
    });
    stream.end('hello');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const socket = net.connect(port, '127.0.0.1');
  t.teardown(() => {
    socket.destroy();
    server.close();
  });
  await once(socket, 'connect');

  const decoder = new HpackDecoder();
  let wake: () => void = () => {};
  const reader = new FrameReader(socket, decoder, () => wake());
  const encoder = new HpackEncoder();
  const requestLists = [0, 1, 2].map((i) => [
    ':method', 'POST', ':scheme', 'http', ':path', '/remora.test.Echo/Say', ':authority', `127.0.0.1:${port}`,
    'content-type', 'application/grpc', 'te', 'trailers', 'user-agent', 'remora-hpack-test/1.0',
    'grpc-accept-encoding', 'identity,deflate,gzip', 'grpc-timeout', `${100 + i}m`, 'x-request-id', `req-${i}`,
    'authorization', 'Bearer not-a-secret', 'x-client-latin1', 'na\u00efve',
    ...(i === 2 ? ['x-big-request', 'x'.repeat(20000)] : []),
  ]);
  const blockLengths: number[] = [];
  const out: Buffer[] = [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), frame(FRAME_SETTINGS, 0, 0, Buffer.alloc(0))];
  for (const [i, fields] of requestLists.entries()) {
    const block = Buffer.from(encoder.encode(fields));
    blockLengths.push(block.length);
    out.push(...headerFrames(1 + 2 * i, block, true));
  }
  socket.write(Buffer.concat(out));

  const done = () => reader.goaway !== undefined || reader.blocks.filter((block) => block.endStream).length === 3;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out waiting for the responses')), 10_000);
    wake = () => {
      if (!done()) return;
      clearTimeout(timer);
      resolve();
    };
    socket.once('close', () => {
      clearTimeout(timer);
      reject(new Error('the server closed the connection'));
    });
    wake();
  });
  t.is(reader.goaway, undefined, `GOAWAY ${reader.goaway?.toString('hex')}`);
  t.deepEqual(serverErrors, []);

  // nghttp2 saw exactly our fields, in order, and authorization arrived as never-indexed.
  t.is(requests.length, 3);
  for (const [i, request] of requests.entries()) {
    t.deepEqual(request.raw, requestLists[i], `request ${i}`);
    t.deepEqual(request.sensitive, ['authorization']);
  }
  // Dynamic indexing shrank the later requests (the third carries a 20 kB literal: CONTINUATION).
  t.true(blockLengths[1]! < blockLengths[0]! / 2, `request blocks ${blockLengths.join(', ')}`);
  t.true(blockLengths[2]! > MAX_FRAME_SIZE);

  // We decoded exactly what nghttp2 sent: headers then trailers on each stream.
  for (let waited = 0; sent.filter(Boolean).length < 3 && waited < 5000; waited += 10) await delay(10);
  t.is(sent.filter(Boolean).length, 3);
  for (let i = 0; i < 3; i++) {
    const blocks = reader.blocks.filter((block) => block.streamId === 1 + 2 * i);
    t.is(blocks.length, 2, `stream ${1 + 2 * i} header blocks`);
    t.deepEqual([...blocks[0]!.fields].sort(comparePairs), sent[i]!.headers, `response headers ${i}`);
    t.deepEqual([...blocks[1]!.fields].sort(comparePairs), sent[i]!.trailers, `response trailers ${i}`);
    t.true(blocks[1]!.endStream);
  }
  t.true(reader.frameFlags.some(({ type, flags }) => type === FRAME_HEADERS && (flags & FLAG_PADDED) !== 0), 'a padded HEADERS frame');
  t.true(reader.frameFlags.some(({ type }) => type === FRAME_CONTINUATION), 'a CONTINUATION frame');
  t.true(reader.frameFlags.some(({ type }) => type === FRAME_DATA));
  t.true(decoder.dynamicEntries().length > 0, 'nghttp2 indexed some response fields');
});

// ---------------------------------------------------------------------------------------------
// Micro benchmark (logs only)

test.serial('benchmark: encode and decode a typical gRPC request block (logs ns per block)', (t) => {
  const iterations = 10_000;
  const rounds = 5;
  const perRound = iterations / rounds;
  const lists: string[][] = [];
  for (let i = 0; i < iterations; i++) {
    const fields = [...GRPC_REQUEST];
    fields[17] = `${(i % 200) + 1}m`;
    fields[19] = `${i.toString(16).padStart(8, '0')}77b34da6a3ce929d0e0e4736`;
    lists.push(fields);
  }
  // Blocks as one connection would carry them: the first fills the table, the rest refer to it.
  const producer = new HpackEncoder();
  const blocks = lists.map((fields) => Buffer.from(producer.encode(fields)));

  const encoder = new HpackEncoder();
  const decoder = new HpackDecoder();
  const encodeRounds: number[] = [];
  const decodeRounds: number[] = [];
  let fieldCount = 0;
  for (let round = 0; round < rounds; round++) {
    const from = round * perRound;
    let started = process.hrtime.bigint();
    for (let i = from; i < from + perRound; i++) encoder.encode(lists[i]!);
    encodeRounds.push(Number(process.hrtime.bigint() - started) / perRound);
    started = process.hrtime.bigint();
    for (let i = from; i < from + perRound; i++) fieldCount += decoder.decode(blocks[i]!, NO_LIMITS).fields.length;
    decodeRounds.push(Number(process.hrtime.bigint() - started) / perRound);
  }
  t.is(fieldCount, iterations * GRPC_REQUEST.length);
  const summary = (samples: number[]) => `best ${Math.min(...samples).toFixed(0)} ns/block (rounds: ${samples.map((ns) => ns.toFixed(0)).join(', ')})`;
  t.log(`steady-state block: ${blocks[1]!.length} octets (first ${blocks[0]!.length}) for ${GRPC_REQUEST.length / 2} fields`);
  t.log(`encode: ${summary(encodeRounds)}`);
  t.log(`decode: ${summary(decodeRounds)}`);
});
