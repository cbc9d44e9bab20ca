// Metadata filters: the Mongo/Pinecone subset of docs/architecture.md §5.5. A filter is
// compiled once per query into a closure tree, because the shard evaluates it for every
// candidate the index visits — re-walking the JSON per candidate would dominate search.
// Anything outside the subset is a 400 naming the exact path, never silently ignored:
// a typo'd operator that matched everything would leak documents across tenants' filters.
import { createError } from '../core/errors.js';

export type Metadata = Record<string, unknown>;
export type MetadataPredicate = (metadata: Metadata) => boolean;

type Scalar = string | number | boolean;
type Comparable = string | number;

const FIELD_OPERATORS = ['$eq', '$ne', '$in', '$nin', '$gt', '$gte', '$lt', '$lte', '$exists'] as const;
type FieldOperator = (typeof FIELD_OPERATORS)[number];

const LOGICAL_OPERATORS = ['$and', '$or'] as const;

function invalid(message: string, param: string): Error {
  return createError('RAGWAY_ERR_INVALID_FILTER', message, { param });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isScalar(value: unknown): value is Scalar {
  return typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

function isComparable(value: unknown): value is Comparable {
  return typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value));
}

function expectScalar(operand: unknown, param: string): Scalar {
  if (!isScalar(operand)) throw invalid(`${param} must be a string, number or boolean`, param);
  return operand;
}

function expectScalarArray(operand: unknown, param: string): Scalar[] {
  if (!Array.isArray(operand)) throw invalid(`${param} must be an array of strings, numbers or booleans`, param);
  operand.forEach((item, i) => expectScalar(item, `${param}[${i}]`));
  return operand as Scalar[];
}

/** Own properties only, so a field named "constructor" or "__proto__" never reads the prototype. */
function fieldValue(metadata: Metadata, field: string): unknown {
  return Object.hasOwn(metadata, field) ? metadata[field] : undefined;
}

/** Mongo semantics: a condition on an array-valued field holds when any element satisfies it. */
function anyValue(value: unknown, test: (v: unknown) => boolean): boolean {
  if (Array.isArray(value)) return value.some(test);
  return test(value);
}

function compileEquals(field: string, operand: Scalar): MetadataPredicate {
  return (metadata) => anyValue(fieldValue(metadata, field), (v) => v === operand);
}

function compileIn(field: string, operands: Scalar[]): MetadataPredicate {
  const set = new Set<unknown>(operands);
  return (metadata) => anyValue(fieldValue(metadata, field), (v) => set.has(v));
}

function compileRange(field: string, op: '$gt' | '$gte' | '$lt' | '$lte', operand: Comparable): MetadataPredicate {
  const type = typeof operand;
  const holds = {
    $gt: (v: Comparable) => v > operand,
    $gte: (v: Comparable) => v >= operand,
    $lt: (v: Comparable) => v < operand,
    $lte: (v: Comparable) => v <= operand,
  }[op];
  // Numbers compare with numbers and strings with strings only; "10" > 9 is never a match.
  return (metadata) => anyValue(fieldValue(metadata, field), (v) => typeof v === type && holds(v as Comparable));
}

function compileFieldOperator(field: string, op: FieldOperator, operand: unknown, param: string): MetadataPredicate {
  switch (op) {
    case '$eq':
      return compileEquals(field, expectScalar(operand, param));
    case '$ne': {
      const equals = compileEquals(field, expectScalar(operand, param));
      return (metadata) => !equals(metadata);
    }
    case '$in':
      return compileIn(field, expectScalarArray(operand, param));
    case '$nin': {
      const within = compileIn(field, expectScalarArray(operand, param));
      return (metadata) => !within(metadata);
    }
    case '$gt':
    case '$gte':
    case '$lt':
    case '$lte':
      if (!isComparable(operand)) throw invalid(`${param} must be a number or a string`, param);
      return compileRange(field, op, operand);
    case '$exists': {
      if (typeof operand !== 'boolean') throw invalid(`${param} must be a boolean`, param);
      return (metadata) => (fieldValue(metadata, field) !== undefined) === operand;
    }
  }
}

function isFieldOperator(key: string): key is FieldOperator {
  return (FIELD_OPERATORS as readonly string[]).includes(key);
}

function compileFieldCondition(field: string, condition: unknown, param: string): MetadataPredicate {
  if (isScalar(condition)) return compileEquals(field, condition);
  if (!isPlainObject(condition)) {
    throw invalid(`${param} must be a string, number, boolean or an object of operators`, param);
  }
  const entries = Object.entries(condition);
  if (entries.length === 0) throw invalid(`${param} must contain at least one operator`, param);
  const predicates = entries.map(([op, operand]) => {
    const opParam = `${param}.${op}`;
    if (!isFieldOperator(op)) {
      throw invalid(`unknown filter operator ${JSON.stringify(op)}; supported: ${FIELD_OPERATORS.join(' ')}`, opParam);
    }
    return compileFieldOperator(field, op, operand, opParam);
  });
  return allOf(predicates);
}

function compileLogical(op: '$and' | '$or', operand: unknown, param: string): MetadataPredicate {
  if (!Array.isArray(operand) || operand.length === 0) {
    throw invalid(`${param} must be a non-empty array of filters`, param);
  }
  const predicates = operand.map((sub, i) => compileFilter(sub, `${param}[${i}]`));
  return op === '$and' ? allOf(predicates) : anyOf(predicates);
}

function allOf(predicates: MetadataPredicate[]): MetadataPredicate {
  if (predicates.length === 1) return predicates[0] as MetadataPredicate;
  return (metadata) => predicates.every((p) => p(metadata));
}

function anyOf(predicates: MetadataPredicate[]): MetadataPredicate {
  if (predicates.length === 1) return predicates[0] as MetadataPredicate;
  return (metadata) => predicates.some((p) => p(metadata));
}

/**
 * Compiles a metadata filter into a predicate. Throws RAGWAY_ERR_INVALID_FILTER (400) with
 * `param` set to the offending path, e.g. `filter.lang.$regex`. `{}` matches everything.
 */
export function compileFilter(filter: unknown, path = 'filter'): MetadataPredicate {
  if (!isPlainObject(filter)) throw invalid(`${path} must be an object`, path);
  const predicates = Object.entries(filter).map(([key, value]) => {
    const param = `${path}.${key}`;
    if (key === '$and' || key === '$or') return compileLogical(key, value, param);
    if (key.startsWith('$')) {
      throw invalid(
        `unknown filter operator ${JSON.stringify(key)}; supported at this level: ${LOGICAL_OPERATORS.join(' ')}`,
        param,
      );
    }
    return compileFieldCondition(key, value, param);
  });
  if (predicates.length === 0) return () => true;
  return allOf(predicates);
}
