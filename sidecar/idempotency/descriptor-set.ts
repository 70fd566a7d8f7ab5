/**
 * Levels from a supplied, serialized FileDescriptorSet: `protoc --descriptor_set_out`, or
 * `buf build -o x.binpb` (a buf image is wire-compatible with FileDescriptorSet; its extra fields
 * are kept as unknown fields and ignored). For services without reflection, or to pin levels.
 */
import { readFile } from 'node:fs/promises';
import { fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { levelsFromFiles, type LevelsResult } from './levels.js';

export function levelsFromDescriptorSet(bytes: Uint8Array): LevelsResult {
  try {
    const set = fromBinary(FileDescriptorSetSchema, bytes);
    const { levels, kinds, services } = levelsFromFiles(set.file);
    return services.length === 0 ? { levels, kinds, services, reason: 'the descriptor set defines no services' } : { levels, kinds, services };
  } catch (err) {
    return { levels: new Map(), kinds: new Map(), services: [], reason: `not a FileDescriptorSet: ${errorText(err)}` };
  }
}

/** Never throws: an unreadable or malformed file gives an empty result and the reason. */
export async function loadDescriptorSet(file: string): Promise<LevelsResult> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (err) {
    return { levels: new Map(), kinds: new Map(), services: [], reason: `cannot read ${file}: ${errorText(err)}` };
  }
  const result = levelsFromDescriptorSet(bytes);
  return result.reason === undefined ? result : { ...result, reason: `${file}: ${result.reason}` };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
