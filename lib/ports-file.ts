/**
 * A process started with port 0 writes the ports it bound to a JSON file (like Envoy's
 * --admin-address-path), so whoever started it never races other processes for a "free" port.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';

export type Ports = Readonly<Record<string, number>>;

export async function writePortsFile(file: string, ports: Ports): Promise<void> {
  // Write then rename, so a reader never sees half a file.
  await writeFile(`${file}.tmp`, JSON.stringify(ports));
  await rename(`${file}.tmp`, file);
}

export async function readPortsFile(file: string): Promise<Ports | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Ports;
  } catch {
    return undefined;
  }
}
