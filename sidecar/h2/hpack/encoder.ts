/**
 * HPACK header block encoding (RFC 7541), tuned for gRPC traffic through a sidecar: the fields
 * that repeat from call to call go into the dynamic table once and are one octet afterwards;
 * per-call values (grpc-timeout, x-request-id) are literals that do not churn the table; secrets
 * and names we know nothing about are never indexed.
 */
import { DEFAULT_HEADER_TABLE_SIZE, DynamicTable, ENTRY_OVERHEAD } from './decoder.js';
import { encodeHuffman, huffmanLength } from './huffman.js';
import { STATIC_EXACT_INDEX, STATIC_NAME_INDEX, STATIC_TABLE_LENGTH } from './static-table.js';

/**
 * Our dynamic table never grows past this, whatever the peer allows: a bigger table buys little
 * for gRPC's small, repetitive header sets and costs memory on every connection.
 */
const ENCODER_TABLE_CAP = DEFAULT_HEADER_TABLE_SIZE;
/** Larger values would evict the whole working set of small repeating fields to save one resend. */
const MAX_INDEXED_VALUE_LENGTH = 1024;
/** A NameOnly name is learned only with an entry no bigger than this share of the table. */
const NAME_ENTRY_SHARE = 8;
/** RFC 7541 7.1.3: short cookies are guessable, so they are never indexed, here or downstream. */
const SHORT_COOKIE_LENGTH = 20;
const UINT32_MAX = 0xffffffff;

/** How a literal for a given name is represented (RFC 7541 6.2). */
const enum Indexing {
  /** 6.2.1: inserted into the dynamic table, so the next identical field is one index. */
  Incremental,
  /** 6.2.2: values that change per call, and every name we know nothing about. */
  Without,
  /**
   * The first value is indexed, to put the name in the table; later values are sent without
   * indexing and refer to that name (~10 octets a call saved), and a value that does repeat
   * (grpc-status: 0) is one octet.
   */
  NameOnly,
  /** 6.2.3: secrets; intermediaries must not index them either. */
  Never,
}

/** Names whose values repeat across the calls of a connection. */
const INDEXED_NAMES = [
  ':authority', ':method', ':path', ':scheme', ':status', 'content-type', 'te', 'user-agent',
  'grpc-accept-encoding', 'grpc-encoding', 'accept-encoding', 'content-encoding',
];
/**
 * Per-call names present on most calls, whose values are not secrets. Unknown names are not
 * learned this way: their first value could be a credential (x-api-key), and a value in the
 * table can be confirmed by a guesser sharing the connection (RFC 7541 7.1).
 */
const NAME_ONLY_NAMES = [
  'grpc-timeout', 'grpc-status', 'grpc-message', 'grpc-previous-rpc-attempts', 'grpc-trace-bin',
  'x-request-id', 'traceparent', 'tracestate', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled',
];
const NEVER_INDEXED_NAMES = ['authorization', 'proxy-authorization', 'cookie'];

/** What the encoder knows about one name: static-table facts, policy, live dynamic entries. */
interface NameState {
  /** Lowest static index with this name, or 0. */
  readonly staticIndex: number;
  /** Static entries with this name by value, when the static table has any. */
  readonly staticValues: ReadonlyMap<string, number> | undefined;
  readonly indexing: Indexing;
  /** Id of the newest dynamic entry with this name (referenced for literals' names), or -1. */
  newestId: number;
  /** Live dynamic entries with this name, by value. */
  idsByValue: Map<string, number> | undefined;
}

const KNOWN_NAMES = [...new Set([...STATIC_NAME_INDEX.keys(), ...INDEXED_NAMES, ...NAME_ONLY_NAMES, ...NEVER_INDEXED_NAMES])];

function indexingOf(name: string): Indexing {
  if (NEVER_INDEXED_NAMES.includes(name)) return Indexing.Never;
  if (INDEXED_NAMES.includes(name)) return Indexing.Incremental;
  if (NAME_ONLY_NAMES.includes(name)) return Indexing.NameOnly;
  return Indexing.Without;
}

function knownNameStates(): Map<string, NameState> {
  const states = new Map<string, NameState>();
  for (const name of KNOWN_NAMES) {
    states.set(name, {
      staticIndex: STATIC_NAME_INDEX.get(name) ?? 0,
      staticValues: STATIC_EXACT_INDEX.get(name),
      indexing: indexingOf(name),
      newestId: -1,
      idsByValue: undefined,
    });
  }
  return states;
}

/**
 * The encoder's dynamic table, with one map from name to everything known about it, so that a
 * field costs one name lookup and one value lookup, and no scan. Only known names are ever
 * indexed, so the map never grows past them, whatever names the traffic carries.
 */
class IndexedDynamicTable extends DynamicTable {
  readonly byName = knownNameStates();

  insert(state: NameState, name: string, value: string): void {
    const id = this.add(name, value);
    if (id < 0) return;
    state.newestId = id;
    (state.idsByValue ??= new Map()).set(value, id);
  }

  protected override evicted(id: number, name: string, value: string): void {
    const state = this.byName.get(name)!;
    if (state.newestId === id) {
      // Eviction is oldest first, so once the newest entry of a name goes, all of them have gone.
      state.newestId = -1;
      state.idsByValue = undefined;
    } else if (state.idsByValue!.get(value) === id) {
      state.idsByValue!.delete(value);
    }
  }
}

/** The most octets writeInteger takes for a uint32. */
const INTEGER_OCTETS = 6;
/** Two dynamic table size updates at the start of a block. */
const BLOCK_OVERHEAD = 2 * INTEGER_OCTETS;
/** The longest Huffman code: the most a short string can grow by when coded optimistically. */
const MAX_CODE_BITS = 30;

/**
 * Encodes the header blocks of one direction of one connection.
 *
 * Huffman coding: a literal is Huffman-coded when that makes it shorter. Measured on a typical
 * steady-state gRPC request (10 fields, 2 per-call literals), it adds ~15% (under 0.1 us) to the
 * encode and saves ~20% of the block (38 octets instead of ~48), which framing, TLS and the
 * kernel would otherwise carry on every call.
 */
export class HpackEncoder {
  private readonly table = new IndexedDynamicTable(DEFAULT_HEADER_TABLE_SIZE);
  private peerTableSize = DEFAULT_HEADER_TABLE_SIZE;
  /** The peer's setting changed since the last block, so the next one starts with size updates. */
  private sizeUpdatePending = false;
  /** The size the next block's last size update announces. */
  private targetTableSize = DEFAULT_HEADER_TABLE_SIZE;
  /** Lowest size allowed since the last block: RFC 7541 4.2 requires announcing it when it dipped. */
  private lowestTableSizeSinceLastBlock = Number.POSITIVE_INFINITY;
  private out = Buffer.allocUnsafe(4096);
  private position = 0;

  /** The dynamic table's size in RFC 7541 4.1 octets: for tests and diagnostics. */
  get dynamicSize(): number {
    return this.table.size;
  }

  /** The dynamic table's entries, newest (index 62) first: for tests and diagnostics. */
  dynamicEntries(): Array<[string, string]> {
    return this.table.entries();
  }

  /**
   * The peer's SETTINGS_HEADER_TABLE_SIZE (default 4096). When it changes, the next block starts
   * with a dynamic table size update (two if it dipped lower in between, RFC 7541 4.2 / 6.3); the
   * table never uses more than this, nor more than 4096 octets whatever the peer allows.
   */
  setMaxTableSize(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > UINT32_MAX) throw new RangeError(`HPACK table size must be a uint32: ${n}`);
    if (n === this.peerTableSize) return;
    this.peerTableSize = n;
    // Announced even when our capped size stays the same: decoders disagree on whether a new
    // setting alone resizes their table (RFC 7541 Appendix C.5 says yes, nghttp2 says no), and
    // an explicit update makes both agree with our table.
    this.sizeUpdatePending = true;
    const size = Math.min(n, ENCODER_TABLE_CAP);
    this.targetTableSize = size;
    if (size < this.lowestTableSizeSinceLastBlock) this.lowestTableSizeSinceLastBlock = size;
  }

  /**
   * Encodes fields (names lowercase already; alternating name, value) into one header block.
   * Strings are latin1: each char's low 8 bits are sent as one octet.
   *
   * The returned Buffer is a view of a scratch buffer that the next encode call overwrites: write
   * it out or copy it before encoding again.
   */
  encode(fields: readonly string[]): Buffer {
    if ((fields.length & 1) !== 0) throw new RangeError('header fields must alternate name and value');
    this.position = 0;
    this.reserve(BLOCK_OVERHEAD);
    this.writePendingSizeUpdates();
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i]!;
      this.reserve(INTEGER_OCTETS);
      this.writeField(name, fields[i + 1]!);
    }
    return this.out.subarray(0, this.position);
  }

  private writeField(name: string, value: string): void {
    const state = this.table.byName.get(name);
    if (state !== undefined) {
      const staticIndex = state.staticValues?.get(value);
      if (staticIndex !== undefined) return this.writeInteger(0x80, 7, staticIndex);
      const dynamicId = state.idsByValue?.get(value);
      if (dynamicId !== undefined) return this.writeInteger(0x80, 7, this.wireIndexOf(dynamicId));
    }
    if (state === undefined) {
      // An unknown name: literal name and value, never added to the table.
      this.writeInteger(0x00, 4, 0);
      this.writeString(name);
      this.writeString(value);
      return;
    }
    const indexing = this.literalIndexing(state, name, value);
    const nameIndex = this.nameIndexOf(state);
    if (indexing === Indexing.Incremental) this.writeInteger(0x40, 6, nameIndex);
    else this.writeInteger(indexing === Indexing.Never ? 0x10 : 0x00, 4, nameIndex);
    if (nameIndex === 0) this.writeString(name);
    this.writeString(value);
    // The name index was resolved before this insertion, as the decoder will (RFC 7541 4.4).
    if (indexing === Indexing.Incremental) this.table.insert(state, name, value);
  }

  /** Static index of the name if it has one (smaller), else its newest dynamic index, else 0. */
  private nameIndexOf(state: NameState): number {
    if (state.staticIndex !== 0) return state.staticIndex;
    return state.newestId >= 0 ? this.wireIndexOf(state.newestId) : 0;
  }

  /** Decides the representation (6.2.1 / 6.2.2 / 6.2.3) of a known name's literal. */
  private literalIndexing(state: NameState, name: string, value: string): Indexing {
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    switch (state.indexing) {
      case Indexing.Incremental:
        return value.length <= MAX_INDEXED_VALUE_LENGTH && entrySize <= this.table.maxSize ? Indexing.Incremental : Indexing.Without;
      case Indexing.NameOnly:
        return state.newestId < 0 && entrySize <= this.table.maxSize / NAME_ENTRY_SHARE ? Indexing.Incremental : Indexing.Without;
      case Indexing.Never:
        return name === 'cookie' && value.length >= SHORT_COOKIE_LENGTH ? Indexing.Without : Indexing.Never;
      default:
        return Indexing.Without;
    }
  }

  private wireIndexOf(id: number): number {
    return STATIC_TABLE_LENGTH + 1 + this.table.positionOf(id);
  }

  private writePendingSizeUpdates(): void {
    if (!this.sizeUpdatePending) return;
    this.sizeUpdatePending = false;
    const lowest = this.lowestTableSizeSinceLastBlock;
    this.lowestTableSizeSinceLastBlock = Number.POSITIVE_INFINITY;
    if (lowest < this.targetTableSize) this.writeSizeUpdate(lowest);
    this.writeSizeUpdate(this.targetTableSize);
  }

  private writeSizeUpdate(size: number): void {
    this.writeInteger(0x20, 5, size);
    this.table.setMaxSize(size);
  }

  /** RFC 7541 5.1, with `flags` the representation bits above the prefix. */
  private writeInteger(flags: number, prefixBits: number, value: number): void {
    const out = this.out;
    let position = this.position;
    const prefixMax = (1 << prefixBits) - 1;
    if (value < prefixMax) {
      out[position++] = flags | value;
    } else {
      out[position++] = flags | prefixMax;
      let rest = value - prefixMax;
      while (rest >= 0x80) {
        out[position++] = (rest & 0x7f) | 0x80;
        rest = rest >>> 7;
      }
      out[position++] = rest;
    }
    this.position = position;
  }

  /** RFC 7541 5.2: Huffman-coded when that is shorter, else raw octets. */
  private writeString(value: string): void {
    const length = value.length;
    if (length < 0x7f) {
      this.writeShortString(value);
      return;
    }
    this.reserve(length + INTEGER_OCTETS);
    const huffman = huffmanLength(value);
    if (huffman < length) {
      this.writeInteger(0x80, 7, huffman);
      this.position = encodeHuffman(value, this.out, this.position);
      return;
    }
    this.writeInteger(0, 7, length);
    this.writeRaw(value);
  }

  /**
   * Below 127 octets either coding's length fits the one-octet prefix, so the Huffman coding is
   * written straight after it and kept if shorter: one pass over the string instead of a sizing
   * pass and a coding pass.
   */
  private writeShortString(value: string): void {
    const length = value.length;
    this.reserve(1 + Math.ceil(length * MAX_CODE_BITS / 8));
    const prefixAt = this.position;
    const end = encodeHuffman(value, this.out, prefixAt + 1);
    const huffman = end - prefixAt - 1;
    if (huffman < length) {
      this.out[prefixAt] = 0x80 | huffman;
      this.position = end;
      return;
    }
    this.out[prefixAt] = length;
    this.position = prefixAt + 1;
    this.writeRaw(value);
  }

  private writeRaw(value: string): void {
    const out = this.out;
    let position = this.position;
    if (value.length > 32) {
      position += out.write(value, position, 'latin1');
    } else {
      for (let i = 0; i < value.length; i++) out[position++] = value.charCodeAt(i);
    }
    this.position = position;
  }

  private reserve(octets: number): void {
    const needed = this.position + octets;
    if (needed <= this.out.length) return;
    const grown = Buffer.allocUnsafe(Math.max(needed, this.out.length * 2));
    this.out.copy(grown, 0, 0, this.position);
    this.out = grown;
  }
}
