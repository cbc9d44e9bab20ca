// Token buckets for per-key rate limits: one for requests (refill = requests per second,
// size = burst) and one for tokens (refill = tokens per minute / 60 s, size = one minute).
// In memory for one gateway; in Redis (one Lua script per check, so the read-modify-write
// is atomic and concurrent requests through any number of gateways cannot overshoot) when
// every replica must share the budget. Redis's own clock is used there, so gateways with
// skewed clocks agree.
import { Redis } from 'ioredis';

export interface BucketSpec {
  /** Tokens added per millisecond. */
  ratePerMs: number;
  /** Most tokens the bucket holds (and starts with). */
  capacity: number;
}

export interface BucketResult {
  allowed: boolean;
  /** Tokens left after this call (may be negative after a charge). */
  remaining: number;
  /** Milliseconds until enough tokens for the call refill (0 when allowed). */
  retryAfterMs: number;
  /** Milliseconds until the bucket is full again. */
  resetMs: number;
}

export interface Buckets {
  /**
   * Takes `cost` tokens when at least max(cost, need) are there; a `cost` of 0 with
   * `need` 1 only checks that the bucket is not empty. `force` takes them regardless (usage
   * known only afterwards, e.g. generated tokens), leaving a debt later requests wait out.
   */
  take(name: string, spec: BucketSpec, cost: number, need: number, force?: boolean): Promise<BucketResult>;
  close(): Promise<void>;
}

function settle(tokens: number, spec: BucketSpec, cost: number, need: number, force: boolean): { tokens: number; result: BucketResult } {
  const required = Math.max(cost, need);
  const allowed = force || tokens >= required;
  const after = allowed ? tokens - cost : tokens;
  return {
    tokens: after,
    result: {
      allowed,
      remaining: after,
      retryAfterMs: allowed ? 0 : Math.ceil((required - tokens) / spec.ratePerMs),
      resetMs: Math.max(0, Math.ceil((spec.capacity - after) / spec.ratePerMs)),
    },
  };
}

export class MemoryBuckets implements Buckets {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  async take(name: string, spec: BucketSpec, cost: number, need: number, force = false): Promise<BucketResult> {
    const now = this.#now();
    const bucket = this.#buckets.get(name);
    const before = bucket === undefined ? spec.capacity : Math.min(spec.capacity, bucket.tokens + (now - bucket.at) * spec.ratePerMs);
    const { tokens, result } = settle(before, spec, cost, need, force);
    if (tokens >= spec.capacity) this.#buckets.delete(name);
    else this.#buckets.set(name, { tokens, at: now });
    return result;
  }

  async close(): Promise<void> {
    this.#buckets.clear();
  }
}

// KEYS[1] bucket; ARGV: rate per ms, capacity, cost, need, force (0/1).
// Returns {allowed, tokens after (string: Lua numbers become integers otherwise)}.
const TAKE_SCRIPT = `
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local need = tonumber(ARGV[4])
local force = ARGV[5] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
else
  tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
end
local required = math.max(cost, need)
local allowed = 0
if force or tokens >= required then
  allowed = 1
  tokens = tokens - cost
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - math.min(tokens, capacity)) / rate) + 1000)
return {allowed, tostring(tokens)}
`;

export class RedisBuckets implements Buckets {
  readonly #redis: Redis;
  readonly #prefix: string;

  private constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  /** Connects (failing start-up when Redis cannot be reached) and loads the script. */
  static async connect(url: string, options: { prefix?: string; commandTimeoutMs?: number } = {}): Promise<RedisBuckets> {
    const redis = new Redis(url, {
      lazyConnect: true,
      // Fail fast rather than queue: a rate-limit check must not hold a request for long.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: options.commandTimeoutMs ?? 2_000,
    });
    redis.defineCommand('ragwayTake', { numberOfKeys: 1, lua: TAKE_SCRIPT });
    redis.on('error', () => {
      // Reported per call (a failed check); the client reconnects on its own.
    });
    try {
      await redis.connect();
    } catch (err) {
      redis.disconnect();
      throw new Error(`cannot reach Redis for rate limits: ${(err as Error).message}`);
    }
    return new RedisBuckets(redis, options.prefix ?? 'ragway:rl:');
  }

  async take(name: string, spec: BucketSpec, cost: number, need: number, force = false): Promise<BucketResult> {
    const command = (this.#redis as unknown as Record<string, (...args: unknown[]) => Promise<[number, string]>>)['ragwayTake'];
    const [allowed, raw] = await command!.call(this.#redis, this.#prefix + name, spec.ratePerMs, spec.capacity, cost, need, force ? '1' : '0');
    const tokens = Number(raw);
    const required = Math.max(cost, need);
    const before = allowed === 1 ? tokens + cost : tokens;
    return {
      allowed: allowed === 1,
      remaining: tokens,
      retryAfterMs: allowed === 1 ? 0 : Math.ceil((required - before) / spec.ratePerMs),
      resetMs: Math.max(0, Math.ceil((spec.capacity - tokens) / spec.ratePerMs)),
    };
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}
