// Refusing before Fastify. Under overload most requests are refused, and through Fastify a
// refusal costs nearly what a cheap request does: a request object and child logger, every
// onRequest hook, the error handler and the reply's serialization — about a quarter of a
// millisecond of the gateway's one thread each, measured at 3,700 refusals/s on 2 cores. At
// 4x capacity three refusals per admitted request then eat a large share of the CPU the
// admitted ones need. Here the server's own request listener answers a request whose gate is
// full with the same 503 envelope and Retry-After, before Fastify sees it.
//
// Only routes with exact paths are looked up (`POST /v1/search`); anything else, a path
// spelled differently, or a gate with room goes on to Fastify, where the access plugin's
// onRequest check still refuses what this one passed. The request body is not read: Node
// discards it once the response ends and keeps the connection. A request with an `Origin`
// header (a browser's) always goes on to Fastify, so the origin policy and CORS headers apply
// to it exactly as before (a page must be able to read its 503, and a disallowed origin gets
// its 403). Other refusals skip the Host check, logging and the HTTP metrics; the admission
// metrics count them.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AdmissionGate } from './admission.js';

export class EarlyRefusal {
  #gates = new Map<string, AdmissionGate>();
  /** Each gate once: a request is looked up (its key built) only while one of them is full. */
  #distinct: readonly AdmissionGate[] = [];

  /** The gate of each `METHOD /exact/path` route (replacing any set before). */
  setRoutes(gates: ReadonlyMap<string, AdmissionGate>): void {
    this.#gates = new Map(gates);
    this.#distinct = [...new Set(gates.values())];
  }

  /** Answers the request with 503 and returns true when its gate is full; false hands it on. */
  refuse(request: IncomingMessage, response: ServerResponse): boolean {
    if (!this.#anyFull() || request.headers.origin !== undefined) return false;
    const url = request.url ?? '';
    const query = url.indexOf('?');
    const gate = this.#gates.get(`${request.method ?? ''} ${query === -1 ? url : url.slice(0, query)}`);
    if (gate === undefined || !gate.full) return false;
    const error = gate.refuse();
    const body = JSON.stringify(error.toEnvelope());
    response.writeHead(error.statusCode, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'retry-after': String(error.retryAfterSeconds ?? 1),
    });
    response.end(body);
    return true;
  }

  #anyFull(): boolean {
    for (const gate of this.#distinct) if (gate.full) return true;
    return false;
  }
}
