/**
 * HPACK header block decoding (RFC 7541) and the dynamic table both directions share.
 */
import { HpackError } from './errors.js';
import { decodeHuffman, latin1String } from './huffman.js';
import { STATIC_NAMES, STATIC_TABLE_LENGTH, STATIC_VALUES } from './static-table.js';

export interface HeaderLimits { readonly maxHeaderListBytes: number; readonly maxHeaderListPairs: number }

/** One decoded header block: names and values alternating, in wire order. */
export type HeaderFields = string[];

/** The SETTINGS_HEADER_TABLE_SIZE both ends assume until told otherwise (RFC 7540 6.5.2). */
export const DEFAULT_HEADER_TABLE_SIZE = 4096;

/** RFC 7541 4.1: each entry costs its octets plus 32 for the implementation's bookkeeping. */
export const ENTRY_OVERHEAD = 32;

/** Wire values at or above this are rejected: no legitimate index, length or size needs them. */
const INTEGER_LIMIT = 0x80000000;
/** 5 continuation octets carry 35 bits, more than INTEGER_LIMIT; longer runs are only padding or abuse. */
const MAX_CONTINUATION_OCTETS = 5;
/** RFC 7541 4.2: a lowered-then-raised size is signalled as two updates; there is never a reason for three. */
const MAX_SIZE_UPDATES_PER_BLOCK = 2;

const INITIAL_RING_CAPACITY = 16;

/**
 * The dynamic table (RFC 7541 2.3.2, 4): a FIFO held in a power-of-two ring of names and values.
 * Entries carry an id that increases with each insertion, so position `i` (0 = newest) is slot
 * `(inserted - 1 - i) & mask`, and growing the ring is a copy by id. Strings hold one octet per
 * char (latin1), so `.length` is the octet count RFC 7541 4.1 sizes entries by.
 */
export class DynamicTable {
  private names: string[];
  private values: string[];
  private mask: number;
  /** Entries ever inserted; the newest entry's id is inserted - 1. */
  private inserted = 0;
  private entryCount = 0;
  private octets = 0;
  private limit: number;

  constructor(maxSize: number) {
    this.limit = maxSize;
    this.names = new Array<string>(INITIAL_RING_CAPACITY).fill('');
    this.values = new Array<string>(INITIAL_RING_CAPACITY).fill('');
    this.mask = INITIAL_RING_CAPACITY - 1;
  }

  get count(): number {
    return this.entryCount;
  }

  /** Sum of entry sizes (RFC 7541 4.1). */
  get size(): number {
    return this.octets;
  }

  get maxSize(): number {
    return this.limit;
  }

  /** Name at position i (0 = newest); the caller has checked i < count. */
  name(i: number): string {
    return this.names[(this.inserted - 1 - i) & this.mask]!;
  }

  value(i: number): string {
    return this.values[(this.inserted - 1 - i) & this.mask]!;
  }

  /** Position (0 = newest) of the live entry with this id. */
  positionOf(id: number): number {
    return this.inserted - 1 - id;
  }

  /** Adds an entry, evicting as RFC 7541 4.4 says; returns its id. An entry larger than the table empties it and is not kept. */
  add(name: string, value: string): number {
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    if (entrySize > this.limit) {
      this.evictDownTo(0);
      return -1;
    }
    this.evictDownTo(this.limit - entrySize);
    if (this.entryCount === this.names.length) this.grow();
    const id = this.inserted++;
    const slot = id & this.mask;
    this.names[slot] = name;
    this.values[slot] = value;
    this.entryCount++;
    this.octets += entrySize;
    return id;
  }

  /** RFC 7541 4.3: a smaller maximum evicts from the old end at once. */
  setMaxSize(maxSize: number): void {
    this.limit = maxSize;
    this.evictDownTo(maxSize);
  }

  /** The entries, newest first, as [name, value]: for tests and diagnostics. */
  entries(): Array<[string, string]> {
    const result: Array<[string, string]> = [];
    for (let i = 0; i < this.entryCount; i++) result.push([this.name(i), this.value(i)]);
    return result;
  }

  /** Called for each entry as it leaves the table, oldest first. */
  protected evicted(_id: number, _name: string, _value: string): void {}

  private evictDownTo(targetSize: number): void {
    while (this.octets > targetSize) {
      const id = this.inserted - this.entryCount;
      const slot = id & this.mask;
      const name = this.names[slot]!;
      const value = this.values[slot]!;
      this.octets -= name.length + value.length + ENTRY_OVERHEAD;
      this.entryCount--;
      // Drop the references so that evicted strings can be collected.
      this.names[slot] = '';
      this.values[slot] = '';
      this.evicted(id, name, value);
    }
  }

  private grow(): void {
    const capacity = this.names.length * 2;
    const mask = capacity - 1;
    const names = new Array<string>(capacity).fill('');
    const values = new Array<string>(capacity).fill('');
    for (let id = this.inserted - this.entryCount; id < this.inserted; id++) {
      names[id & mask] = this.names[id & this.mask]!;
      values[id & mask] = this.values[id & this.mask]!;
    }
    this.names = names;
    this.values = values;
    this.mask = mask;
  }
}

const EMPTY_BLOCK = Buffer.alloc(0);

/**
 * Decodes the header blocks of one direction of one connection. Not reentrant: decode keeps its
 * cursor on the instance so that the integer and string readers return plain numbers and strings.
 */
export class HpackDecoder {
  private readonly maxTableSize: number;
  private readonly table: DynamicTable;
  private block: Buffer = EMPTY_BLOCK;
  private position = 0;
  private end = 0;
  /** The field readField just read. */
  private fieldName = '';
  private fieldValue = '';

  /** maxTableSize: the SETTINGS_HEADER_TABLE_SIZE we advertised (default 4096). */
  constructor(maxTableSize: number = DEFAULT_HEADER_TABLE_SIZE) {
    if (!Number.isInteger(maxTableSize) || maxTableSize < 0 || maxTableSize > 0xffffffff) {
      throw new RangeError(`HPACK table size must be a uint32: ${maxTableSize}`);
    }
    this.maxTableSize = maxTableSize;
    this.table = new DynamicTable(maxTableSize);
  }

  /** The dynamic table's size in RFC 7541 4.1 octets: for tests and diagnostics. */
  get dynamicSize(): number {
    return this.table.size;
  }

  /** The dynamic table's entries, newest (index 62) first: for tests and diagnostics. */
  dynamicEntries(): Array<[string, string]> {
    return this.table.entries();
  }

  /**
   * Decodes a complete header block (HEADERS + CONTINUATION payloads already joined).
   * Throws HpackError on any coding error (bad index, bad integer, bad Huffman, table size update
   * above our max or not at the start of the block, etc.). The dynamic table is updated fully
   * even when limits are exceeded (the connection state must stay in sync); then `tooLarge` is
   * set to true on the result instead of throwing, so the caller can reset just that stream.
   * When `tooLarge` is true, `fields` holds only the fields before the limit was crossed.
   * Header list size is counted as RFC 7540 6.5.2 does: name length + value length + 32 per field.
   * Names are returned as sent: rejecting uppercase or otherwise malformed names is the caller's job.
   */
  decode(block: Buffer, limits: HeaderLimits): { fields: HeaderFields; tooLarge: boolean } {
    this.block = block;
    this.position = 0;
    this.end = block.length;
    const fields: HeaderFields = [];
    let listBytes = 0;
    let pairs = 0;
    let tooLarge = false;
    let sizeUpdates = 0;
    while (this.position < this.end) {
      const first = block[this.position]!;
      if ((first & 0xe0) === 0x20) {
        // RFC 7541 4.2: size updates come before the first field of a block.
        if (pairs > 0) throw new HpackError('dynamic table size update after a header field');
        if (++sizeUpdates > MAX_SIZE_UPDATES_PER_BLOCK) throw new HpackError('more than two dynamic table size updates');
        this.readSizeUpdate();
        continue;
      }
      this.readField(first);
      const name = this.fieldName;
      const value = this.fieldValue;
      listBytes += name.length + value.length + ENTRY_OVERHEAD;
      pairs++;
      if (listBytes > limits.maxHeaderListBytes || pairs > limits.maxHeaderListPairs) tooLarge = true;
      if (!tooLarge) fields.push(name, value);
    }
    this.block = EMPTY_BLOCK;
    this.fieldName = this.fieldValue = '';
    return { fields, tooLarge };
  }

  /** Reads one field representation into fieldName and fieldValue (no tuple to allocate). */
  private readField(first: number): void {
    if (first >= 0x80) {
      this.readIndexedField();
    } else if (first >= 0x40) {
      // 6.2.1 Literal Header Field with Incremental Indexing
      this.fieldName = this.readName(6);
      this.fieldValue = this.readString();
      this.table.add(this.fieldName, this.fieldValue);
    } else {
      // 6.2.2 without indexing (0000) and 6.2.3 never indexed (0001) decode alike: what differs
      // is what a re-encoder must do, and the sidecar re-encodes by its own policy.
      this.fieldName = this.readName(4);
      this.fieldValue = this.readString();
    }
  }

  /** 6.1 Indexed Header Field. */
  private readIndexedField(): void {
    const index = this.readInteger(7);
    if (index > STATIC_TABLE_LENGTH) {
      const position = this.dynamicPosition(index);
      this.fieldName = this.table.name(position);
      this.fieldValue = this.table.value(position);
      return;
    }
    if (index === 0) throw new HpackError('indexed header field with index 0');
    this.fieldName = STATIC_NAMES[index]!;
    this.fieldValue = STATIC_VALUES[index]!;
  }

  /** 6.3 Dynamic Table Size Update. */
  private readSizeUpdate(): void {
    const size = this.readInteger(5);
    if (size > this.maxTableSize) throw new HpackError(`dynamic table size update ${size} above the advertised ${this.maxTableSize}`);
    this.table.setMaxSize(size);
  }

  /** Maps a wire index above the static table to a dynamic table position, or throws. */
  private dynamicPosition(index: number): number {
    const position = index - STATIC_TABLE_LENGTH - 1;
    if (position >= this.table.count) {
      throw new HpackError(`header index ${index} beyond the ${STATIC_TABLE_LENGTH + this.table.count} table entries`);
    }
    return position;
  }

  /** Reads the name of a literal representation: an index in the prefix, or 0 and a string literal. */
  private readName(prefixBits: number): string {
    const index = this.readInteger(prefixBits);
    if (index === 0) return this.readString();
    if (index <= STATIC_TABLE_LENGTH) return STATIC_NAMES[index]!;
    return this.table.name(this.dynamicPosition(index));
  }

  /** RFC 7541 5.1. The caller has checked that an octet is left. */
  private readInteger(prefixBits: number): number {
    const block = this.block;
    let position = this.position;
    const prefixMax = (1 << prefixBits) - 1;
    let value = block[position++]! & prefixMax;
    if (value < prefixMax) {
      this.position = position;
      return value;
    }
    let weight = 1;
    for (let octets = 0; ; octets++) {
      if (position >= this.end) throw new HpackError('header block truncated inside an integer');
      if (octets === MAX_CONTINUATION_OCTETS) throw new HpackError('integer with too many continuation octets');
      const octet = block[position++]!;
      value += (octet & 0x7f) * weight;
      if (value >= INTEGER_LIMIT) throw new HpackError('integer overflow');
      if (octet < 0x80) break;
      weight *= 128;
    }
    this.position = position;
    return value;
  }

  /** RFC 7541 5.2. */
  private readString(): string {
    if (this.position >= this.end) throw new HpackError('header block truncated before a string literal');
    const huffman = this.block[this.position]! >= 0x80;
    const length = this.readInteger(7);
    const start = this.position;
    const stop = start + length;
    if (stop > this.end) throw new HpackError('string literal longer than the rest of the header block');
    this.position = stop;
    return huffman ? decodeHuffman(this.block, start, stop) : latin1String(this.block, start, stop);
  }
}
