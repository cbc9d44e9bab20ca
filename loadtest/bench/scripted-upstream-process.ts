// Runs the scripted OpenAI-compatible upstream (the test fixture) in its own process, so a
// benchmark's load generator and the upstream do not share an event loop.
// Usage: node scripted-upstream-process.js '<json script>'; prints "listening on <url>".
import { startScriptedUpstream, type UpstreamScript } from '../../test/fixtures/scripted-upstream.js';

const script = JSON.parse(process.argv[2] ?? '{}') as Partial<UpstreamScript>;
const upstream = await startScriptedUpstream(script);
process.stdout.write(`scripted upstream listening on ${upstream.url}\n`);
const stop = (): void => {
  void upstream.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
