// A real DNS server for discovery tests (dns2, UDP on a free loopback port): it answers SRV and
// A/AAAA questions from records the test changes while the gateway runs, and can be told to
// fail (SERVFAIL) or to know nothing (NXDOMAIN). The gateway reaches it through node:dns with
// RAGWAY_DNS_SERVERS, exactly as it would reach a cluster's resolver.
import dns2 from 'dns2';

const { Packet } = dns2;

export interface SrvTarget {
  /** The target host name (the tests use IP literals so undici connects without a lookup). */
  target: string;
  port: number;
}

export type DnsMode = 'answer' | 'servfail' | 'nxdomain';

export interface TestDnsServer {
  /** "127.0.0.1:PORT", for RAGWAY_DNS_SERVERS. */
  address: string;
  setSrv(name: string, targets: readonly SrvTarget[]): void;
  setAddresses(name: string, addresses: readonly string[]): void;
  setMode(mode: DnsMode): void;
  /** Questions answered so far, by name (tests wait for a refresh to have asked). */
  queries(name: string): number;
  close(): Promise<void>;
}

const normalize = (name: string): string => name.toLowerCase().replace(/\.$/, '');

export async function startDnsServer(): Promise<TestDnsServer> {
  const srv = new Map<string, SrvTarget[]>();
  const addresses = new Map<string, string[]>();
  const asked = new Map<string, number>();
  let mode: DnsMode = 'answer';
  const server = dns2.createServer({
    udp: true,
    handle: (request, send) => {
      const response = Packet.createResponseFromRequest(request);
      const question = request.questions[0];
      if (question === undefined) {
        response.header.rcode = Packet.RCODE.FORMERR;
        void send(response);
        return;
      }
      const name = normalize(question.name);
      asked.set(name, (asked.get(name) ?? 0) + 1);
      const known = srv.has(name) || addresses.has(name);
      if (mode === 'servfail') response.header.rcode = Packet.RCODE.SERVFAIL;
      else if (mode === 'nxdomain' || !known) response.header.rcode = Packet.RCODE.NXDOMAIN;
      else if (question.type === Packet.TYPE.SRV) {
        for (const { target, port } of srv.get(name) ?? []) {
          response.answers.push({ name: question.name, type: Packet.TYPE.SRV, class: Packet.CLASS.IN, ttl: 1, priority: 0, weight: 10, port, target } as unknown as dns2.Packet.Resource);
        }
      } else {
        const v6 = question.type === Packet.TYPE.AAAA;
        for (const address of addresses.get(name) ?? []) {
          if (address.includes(':') !== v6) continue;
          response.answers.push({ name: question.name, type: question.type, class: Packet.CLASS.IN, ttl: 1, address } as unknown as dns2.Packet.Resource);
        }
      }
      void send(response);
    },
  });
  const listening = await server.listen({ udp: { port: 0, address: '127.0.0.1' } });
  const port = (listening.udp as { port: number }).port;
  return {
    address: `127.0.0.1:${port}`,
    setSrv: (name, targets) => void srv.set(normalize(name), [...targets]),
    setAddresses: (name, list) => void addresses.set(normalize(name), [...list]),
    setMode: (next) => {
      mode = next;
    },
    queries: (name) => asked.get(normalize(name)) ?? 0,
    close: () => server.close(),
  };
}
