// One parser for every list of base URLs the CLI and config accept (LLM upstreams, shard
// replicas, peers): comma-separated, http or https only, trailing slashes dropped.

/** Thrown with a message that names the setting and the offending value. */
export class UrlListError extends Error {
  override readonly name = 'UrlListError';
}

/** Checks one base URL; `name` says where it came from (a variable, a flag). */
export function parseBaseUrl(url: string, name: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UrlListError(`${name}: "${url}" is not a URL (expected e.g. http://127.0.0.1:7001)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UrlListError(`${name}: "${url}" must use http or https`);
  return url.replace(/\/+$/, '');
}

/** "a, b,,c" → ["a", "b", "c"], each checked; an empty list is allowed only with `allowEmpty`. */
export function parseUrlList(list: string, name: string, options: { allowEmpty?: boolean } = {}): string[] {
  const urls = list
    .split(',')
    .map((url) => url.trim())
    .filter((url) => url !== '')
    .map((url) => parseBaseUrl(url, name));
  if (urls.length === 0 && options.allowEmpty !== true) throw new UrlListError(`${name} lists no URL`);
  return urls;
}
