/**
 * A route's match, compiled once per config for the per-call test: the method by `===` or
 * startsWith, headers by string compare, presence, or a regex compiled up front (with the same
 * function the validator used, so what validated is what runs). Also the order in which one
 * service's routes are tried: most specific first.
 */
import type { IncomingHttpHeaders } from 'node:http2';
import { compileHeaderRegex } from '../../control-plane/resources/route.js';
import type { RouteMatch } from '../config/model.js';

/** How one header is tested. Numbers rather than strings: the per-call switch compares small integers. */
const EXACT = 0;
const REGEX = 1;
const PRESENT = 2;
const ABSENT = 3;

interface HeaderTest {
  readonly name: string;
  readonly kind: typeof EXACT | typeof REGEX | typeof PRESENT | typeof ABSENT;
  readonly exact: string;
  readonly regex: RegExp | undefined;
}

function compileHeader(h: NonNullable<RouteMatch['headers']>[number]): HeaderTest {
  if (h.exact !== undefined) return { name: h.name, kind: EXACT, exact: h.exact, regex: undefined };
  if (h.regex !== undefined) return { name: h.name, kind: REGEX, exact: '', regex: compileHeaderRegex(h.regex) };
  return { name: h.name, kind: h.present === false ? ABSENT : PRESENT, exact: '', regex: undefined };
}

/**
 * A repeated header reaches us as a list only for set-cookie; node joins the others with ", ".
 * Joining a list the same way means a matcher sees one value whatever the header.
 */
function valueOf(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

export class CompiledMatch {
  private readonly methodExact: string | undefined;
  private readonly methodPrefix: string | undefined;
  private readonly headers: readonly HeaderTest[];
  /** For ordering: 2 exact method, 1 prefix, 0 none. */
  readonly methodRank: number;
  readonly prefixLength: number;
  readonly headerCount: number;

  constructor(match: RouteMatch) {
    this.methodExact = match.method?.exact;
    this.methodPrefix = match.method?.prefix;
    this.headers = (match.headers ?? []).map(compileHeader);
    this.methodRank = this.methodExact !== undefined ? 2 : this.methodPrefix !== undefined ? 1 : 0;
    this.prefixLength = this.methodPrefix?.length ?? 0;
    this.headerCount = this.headers.length;
  }

  /** Matches every call to its service: nothing to test per call. */
  get unconditional(): boolean {
    return this.methodRank === 0 && this.headerCount === 0;
  }

  matches(path: string | undefined, headers: IncomingHttpHeaders): boolean {
    if (this.methodExact !== undefined && path !== this.methodExact) return false;
    if (this.methodPrefix !== undefined && (path === undefined || !path.startsWith(this.methodPrefix))) return false;
    const tests = this.headers;
    for (let i = 0; i < tests.length; i++) {
      const h = tests[i]!;
      const value = valueOf(headers[h.name]);
      switch (h.kind) {
        case EXACT:
          if (value !== h.exact) return false;
          break;
        case REGEX:
          if (value === undefined || !h.regex!.test(value)) return false;
          break;
        case PRESENT:
          if (value === undefined) return false;
          break;
        case ABSENT:
          if (value !== undefined) return false;
          break;
      }
    }
    return true;
  }
}

/**
 * Most specific first: an exact method before any prefix, a longer prefix before a shorter one,
 * either before no method; then more header matchers first; then by name (code units, not the
 * locale) so the order never depends on config order or the machine. Identical matches are
 * rejected by validation, so the name only separates routes that could both match a call.
 */
export function bySpecificity(a: { readonly name: string; readonly match: CompiledMatch }, b: { readonly name: string; readonly match: CompiledMatch }): number {
  return (
    b.match.methodRank - a.match.methodRank ||
    b.match.prefixLength - a.match.prefixLength ||
    b.match.headerCount - a.match.headerCount ||
    (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  );
}
