/**
 * The few grpc.reflection messages we need, encoded and decoded by field number. v1 and v1alpha
 * share them byte for byte, so one codec serves both; a schema-generated codec for five fields
 * was not worth a build step.
 *
 *   ServerReflectionRequest  { string host = 1; oneof { string file_containing_symbol = 4; string list_services = 7; ... } }
 *   ServerReflectionResponse { ServerReflectionRequest original_request = 2; oneof {
 *     FileDescriptorResponse file_descriptor_response = 4;   // { repeated bytes file_descriptor_proto = 1; }
 *     ListServiceResponse list_services_response = 6;        // { repeated ServiceResponse service = 1; } ServiceResponse { string name = 1; }
 *     ErrorResponse error_response = 7;                      // { int32 error_code = 1; string error_message = 2; }
 *   } }
 */
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';

const REQ_FILE_CONTAINING_SYMBOL = 4;
const REQ_LIST_SERVICES = 7;

export function encodeListServices(): Uint8Array {
  // The value is ignored by servers but must be on the wire: an empty oneof would be no request at all.
  return new BinaryWriter().tag(REQ_LIST_SERVICES, WireType.LengthDelimited).string('').finish();
}

export function encodeFileContainingSymbol(symbol: string): Uint8Array {
  return new BinaryWriter().tag(REQ_FILE_CONTAINING_SYMBOL, WireType.LengthDelimited).string(symbol).finish();
}

export type ReflectionResponse =
  | { readonly kind: 'services'; readonly names: string[] }
  | { readonly kind: 'files'; readonly files: Uint8Array[]; readonly symbol?: string }
  | { readonly kind: 'error'; readonly code: number; readonly message: string; readonly symbol?: string }
  | { readonly kind: 'other' };

/** Throws on malformed bytes (the caller turns that into a reason). */
export function decodeResponse(bytes: Uint8Array): ReflectionResponse {
  const r = new BinaryReader(bytes);
  let symbol: string | undefined;
  let body: ReflectionResponse = { kind: 'other' };
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (wire !== WireType.LengthDelimited) {
      r.skip(wire, field);
      continue;
    }
    switch (field) {
      case 2:
        symbol = readOriginalSymbol(r.bytes());
        break;
      case 4:
        body = { kind: 'files', files: repeatedBytes(r.bytes(), 1) };
        break;
      case 6:
        body = { kind: 'services', names: repeatedBytes(r.bytes(), 1).map(readServiceName) };
        break;
      case 7:
        body = readError(r.bytes());
        break;
      default:
        r.skip(wire, field);
    }
  }
  // original_request may come before or after the body; attach it last.
  if (symbol !== undefined && (body.kind === 'files' || body.kind === 'error')) body = { ...body, symbol };
  return body;
}

/** The length-delimited occurrences of `field` in a message (repeated bytes or messages). */
function repeatedBytes(bytes: Uint8Array, field: number): Uint8Array[] {
  const r = new BinaryReader(bytes);
  const out: Uint8Array[] = [];
  while (r.pos < r.len) {
    const [no, wire] = r.tag();
    if (no === field && wire === WireType.LengthDelimited) out.push(r.bytes());
    else r.skip(wire, no);
  }
  return out;
}

function readServiceName(bytes: Uint8Array): string {
  const r = new BinaryReader(bytes);
  let name = '';
  while (r.pos < r.len) {
    const [no, wire] = r.tag();
    if (no === 1 && wire === WireType.LengthDelimited) name = r.string();
    else r.skip(wire, no);
  }
  return name;
}

function readOriginalSymbol(bytes: Uint8Array): string | undefined {
  const r = new BinaryReader(bytes);
  let symbol: string | undefined;
  while (r.pos < r.len) {
    const [no, wire] = r.tag();
    if (no === REQ_FILE_CONTAINING_SYMBOL && wire === WireType.LengthDelimited) symbol = r.string();
    else r.skip(wire, no);
  }
  return symbol;
}

function readError(bytes: Uint8Array): ReflectionResponse {
  const r = new BinaryReader(bytes);
  let code = 0;
  let message = '';
  while (r.pos < r.len) {
    const [no, wire] = r.tag();
    if (no === 1 && wire === WireType.Varint) code = r.int32();
    else if (no === 2 && wire === WireType.LengthDelimited) message = r.string();
    else r.skip(wire, no);
  }
  return { kind: 'error', code, message };
}
