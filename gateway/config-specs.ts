// How a setting is described (kind, default, bounds, doc line) and parsed from its text; the
// settings themselves are listed in config.ts.

export type Kind = 'string' | 'integer' | 'number' | 'boolean' | 'enum';

export interface SettingSpec<T> {
  readonly env: string;
  readonly kind: Kind;
  readonly defaultValue: T;
  readonly doc: string;
  readonly min?: number;
  readonly max?: number;
  readonly values?: readonly string[];
  readonly secret?: boolean;
}

export function integer(env: string, defaultValue: number, doc: string, min = 0, max = Number.MAX_SAFE_INTEGER): SettingSpec<number> {
  return { env, kind: 'integer', defaultValue, doc, min, max };
}
export function number(env: string, defaultValue: number, doc: string, min: number, max: number): SettingSpec<number> {
  return { env, kind: 'number', defaultValue, doc, min, max };
}
export function string(env: string, defaultValue: string, doc: string): SettingSpec<string> {
  return { env, kind: 'string', defaultValue, doc };
}
export function secret(env: string, doc: string): SettingSpec<string> {
  return { env, kind: 'string', defaultValue: '', doc, secret: true };
}
export function boolean(env: string, defaultValue: boolean, doc: string): SettingSpec<boolean> {
  return { env, kind: 'boolean', defaultValue, doc };
}
export function oneOf<const V extends string>(env: string, values: readonly V[], defaultValue: V, doc: string): SettingSpec<V> {
  return { env, kind: 'enum', defaultValue, doc, values };
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function parseValue(spec: SettingSpec<unknown>, raw: string): unknown {
  switch (spec.kind) {
    case 'integer': {
      if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${spec.env} must be an integer, got "${raw}"`);
      const value = Number(raw);
      if (value < (spec.min ?? -Infinity) || value > (spec.max ?? Infinity)) {
        throw new ConfigError(`${spec.env} must be between ${spec.min} and ${spec.max}, got ${value}`);
      }
      return value;
    }
    case 'number': {
      const value = Number(raw.trim());
      if (raw.trim() === '' || !Number.isFinite(value)) throw new ConfigError(`${spec.env} must be a number, got "${raw}"`);
      if (value < (spec.min ?? -Infinity) || value > (spec.max ?? Infinity)) {
        throw new ConfigError(`${spec.env} must be between ${spec.min} and ${spec.max}, got ${value}`);
      }
      return value;
    }
    case 'boolean':
      if (!['true', 'false', '1', '0'].includes(raw)) throw new ConfigError(`${spec.env} must be true or false, got "${raw}"`);
      return raw === 'true' || raw === '1';
    case 'enum':
      if (!spec.values?.includes(raw)) throw new ConfigError(`${spec.env} must be one of ${spec.values?.join(', ')}, got "${raw}"`);
      return raw;
    case 'string':
      return raw;
  }
}
