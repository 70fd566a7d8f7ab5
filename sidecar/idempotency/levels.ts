/**
 * A method's idempotency_level (google.protobuf.MethodOptions field 34), read from
 * FileDescriptorProtos, keyed by the HTTP/2 `:path` a call to it carries: `/pkg.Service/Method`.
 */
import {
  MethodOptions_IdempotencyLevel,
  type FileDescriptorProto,
} from '@bufbuild/protobuf/wkt';

/** UNKNOWN covers both "the method says IDEMPOTENCY_UNKNOWN" and "we know nothing about it". */
export type IdempotencyLevel = 'NO_SIDE_EFFECTS' | 'IDEMPOTENT' | 'UNKNOWN';

/** `:path` → level. */
export type MethodLevels = ReadonlyMap<string, IdempotencyLevel>;

/**
 * A method's shape from its descriptor. The retry path reads it: a unary answer is one message
 * followed at once by its status, so it may be held back until the status arrives; a stream's
 * messages may not wait that long.
 */
export type MethodKind = 'UNARY' | 'CLIENT_STREAMING' | 'SERVER_STREAMING' | 'BIDI_STREAMING';

/** `:path` → kind. */
export type MethodKinds = ReadonlyMap<string, MethodKind>;

/** What a descriptor source yielded. Never thrown: `reason` says why something is missing. */
export interface LevelsResult {
  readonly levels: Map<string, IdempotencyLevel>;
  /** The same paths' kinds. */
  readonly kinds: Map<string, MethodKind>;
  /** Fully-qualified names of the services found. */
  readonly services: readonly string[];
  /** Set when the result is empty or partial because something failed. */
  readonly reason?: string;
}

export function levelFromOption(value: MethodOptions_IdempotencyLevel | undefined): IdempotencyLevel {
  switch (value) {
    case MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS:
      return 'NO_SIDE_EFFECTS';
    case MethodOptions_IdempotencyLevel.IDEMPOTENT:
      return 'IDEMPOTENT';
    default:
      return 'UNKNOWN';
  }
}

/**
 * Every method of every service in `files`, UNKNOWN ones included: a method listed as UNKNOWN is
 * information (see IdempotencyCatalog's merge), not the absence of it.
 */
export function kindOf(clientStreaming: boolean, serverStreaming: boolean): MethodKind {
  if (clientStreaming) return serverStreaming ? 'BIDI_STREAMING' : 'CLIENT_STREAMING';
  return serverStreaming ? 'SERVER_STREAMING' : 'UNARY';
}

export function levelsFromFiles(files: Iterable<FileDescriptorProto>): { levels: Map<string, IdempotencyLevel>; kinds: Map<string, MethodKind>; services: string[] } {
  const levels = new Map<string, IdempotencyLevel>();
  const kinds = new Map<string, MethodKind>();
  const services: string[] = [];
  for (const file of files) {
    const prefix = file.package === '' ? '' : `${file.package}.`;
    for (const service of file.service) {
      const fullName = prefix + service.name;
      if (!services.includes(fullName)) services.push(fullName);
      for (const method of service.method) {
        const path = `/${fullName}/${method.name}`;
        levels.set(path, levelFromOption(method.options?.idempotencyLevel));
        kinds.set(path, kindOf(method.clientStreaming === true, method.serverStreaming === true));
      }
    }
  }
  return { levels, kinds, services };
}
