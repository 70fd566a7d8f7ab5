/** The static config source: a YAML file, so a sidecar runs with no control plane. */
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { parse } from 'yaml';
import { ConfigError, validateMeshConfig } from './validate.js';
import type { MeshConfig } from './model.js';

export async function loadStaticConfig(file: string): Promise<MeshConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`${file}: cannot read: ${(err as Error).message}`]);
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new ConfigError([`${file}: not valid YAML: ${(err as Error).message}`]);
  }
  // Content-addressed, so an unchanged file reloads as the same version.
  const version = `static-${createHash('sha256').update(text).digest('hex').slice(0, 12)}`;
  try {
    return validateMeshConfig(doc, version);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(err.problems.map((p) => `${file}: ${p}`));
    throw err;
  }
}
