/**
 * An HPACK coding error. RFC 7540 4.3 makes every one a connection error of type
 * COMPRESSION_ERROR: once a header block fails to decode, the two dynamic tables can no longer be
 * assumed to agree, so the connection must be torn down, not just the stream.
 */
export class HpackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HpackError';
  }
}
