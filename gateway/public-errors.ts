// What a client may read of a server-side failure. The retriever's messages are written for
// operators: replica URLs and the replica's own words ("connect ECONNREFUSED 10.0.0.2:7001",
// a shard's error body, a local exception's text). A client gets the same sentence with each
// replica named by shard and replica index and the causes cut; the full message, with its
// cause chain, goes to the log under the request id the client is told.
import { parseShardSource } from './config.js';

const CAUSES: readonly [RegExp, string][] = [
  // "… unavailable: connect ECONNREFUSED 127.0.0.1:7001" / "… failed: Maximum call stack size exceeded"
  [/\b(unavailable|failed): [^;]*/g, '$1'],
  [/ \(last: [^)]*\)/g, ''],
  [/ (and no ragway error|that is not a JSON object): [^;]*/g, ' $1'],
];
const ANY_URL = /\bhttps?:\/\/[^\s;,)]+/g;
const ADDRESS = /\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b|\[[0-9a-f:]+\](?::\d+)?/gi;

function normalize(url: string): string {
  const parsed = new URL(url);
  return parsed.origin + parsed.pathname.replace(/\/+$/, '');
}

/** Replica URL → "shard-<i> replica <j>" for the configured shard spec. */
export function replicaNames(shardSpec: string): Map<string, string> {
  const names = new Map<string, string>();
  if (shardSpec.trim() === '') return names;
  const source = parseShardSource(shardSpec);
  // Discovered replicas have no fixed names: their URLs are cut as any internal address is.
  if (source.kind === 'dns') return names;
  source.shards.forEach((urls, shard) =>
    urls.forEach((url, replica) => names.set(normalize(url), `shard-${shard} replica ${replica}`)),
  );
  return names;
}

/** The client's version of an operator's message (see above). */
export function publicMessage(message: string, names: ReadonlyMap<string, string>, requestId: string): string {
  let text = message;
  // Longest first, so http://a:70011 is not half-replaced by http://a:7001.
  for (const [url, name] of [...names].sort((a, b) => b[0].length - a[0].length)) {
    // The shard client calls itself "shard-0 (http://…)": one name is enough.
    text = text.replace(new RegExp(`shard-\\d+ \\(${escape(url)}\\)`, 'g'), name).replaceAll(url, name);
  }
  for (const [pattern, replacement] of CAUSES) text = text.replace(pattern, replacement);
  text = text.replace(ANY_URL, 'an internal address').replace(ADDRESS, 'an internal address');
  return `${text} (details are in the server log under request id ${requestId})`;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
