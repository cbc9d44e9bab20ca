// A minimal ONNX (protobuf) encoder: just enough of ModelProto to write small inference graphs
// such as the glove-sif model. Hand-written so the build needs no protobuf toolchain and so the
// bytes are a pure function of the input: fields are always emitted in field-number order, there
// are no maps, and nothing depends on the clock or the host. Field numbers follow onnx/onnx.proto.

import { endianness } from 'node:os';

/** TensorProto.DataType codes used here. */
export const TensorDataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
} as const;
export type TensorDataTypeCode = (typeof TensorDataType)[keyof typeof TensorDataType];

export interface TensorSpec {
  readonly name: string;
  readonly dataType: TensorDataTypeCode;
  readonly dims: readonly number[];
  /** Little-endian element bytes (TensorProto.raw_data). */
  readonly rawData: Uint8Array;
}

export type AttributeSpec =
  | { readonly name: string; readonly type: 'float'; readonly value: number }
  | { readonly name: string; readonly type: 'int'; readonly value: number | bigint }
  | { readonly name: string; readonly type: 'string'; readonly value: string }
  | { readonly name: string; readonly type: 'tensor'; readonly value: TensorSpec }
  | { readonly name: string; readonly type: 'floats'; readonly value: readonly number[] }
  | { readonly name: string; readonly type: 'ints'; readonly value: readonly (number | bigint)[] };

export interface NodeSpec {
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly name?: string;
  readonly domain?: string;
  readonly attributes?: readonly AttributeSpec[];
}

/** A tensor-typed graph input or output; a string dimension is symbolic (dim_param). */
export interface ValueInfoSpec {
  readonly name: string;
  readonly elemType: TensorDataTypeCode;
  readonly shape: readonly (number | string)[];
}

export interface GraphSpec {
  readonly name: string;
  readonly nodes: readonly NodeSpec[];
  readonly initializers: readonly TensorSpec[];
  readonly inputs: readonly ValueInfoSpec[];
  readonly outputs: readonly ValueInfoSpec[];
  readonly docString?: string;
}

export interface ModelSpec {
  readonly irVersion: number;
  readonly opsetImports: readonly { readonly domain: string; readonly version: number }[];
  readonly producerName?: string;
  readonly producerVersion?: string;
  readonly docString?: string;
  readonly graph: GraphSpec;
  /** Written in the given order (metadata_props is a repeated field, not a map). */
  readonly metadata?: readonly (readonly [string, string])[];
}

const WIRE_VARINT = 0;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

const textEncoder = new TextEncoder();

// Collects a message as a list of byte chunks so that large payloads (a 40 MB initializer) are
// copied once, into the final buffer, however deeply they are nested.
class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  private length = 0;

  get byteLength(): number {
    return this.length;
  }

  private push(bytes: Uint8Array): void {
    if (bytes.byteLength === 0) return;
    this.chunks.push(bytes);
    this.length += bytes.byteLength;
  }

  private varint(value: bigint): void {
    // Negative int64 values are written as their 64-bit two's complement (10 bytes), as protobuf does.
    let v = BigInt.asUintN(64, value);
    const out: number[] = [];
    while (v >= 0x80n) {
      out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(Number(v));
    this.push(Uint8Array.from(out));
  }

  private tag(field: number, wire: number): void {
    this.varint(BigInt((field << 3) | wire));
  }

  int(field: number, value: number | bigint): void {
    this.tag(field, WIRE_VARINT);
    this.varint(typeof value === 'bigint' ? value : BigInt(checkInteger(value)));
  }

  float(field: number, value: number): void {
    this.tag(field, WIRE_FIXED32);
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setFloat32(0, value, true);
    this.push(bytes);
  }

  bytes(field: number, value: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.varint(BigInt(value.byteLength));
    this.push(value);
  }

  string(field: number, value: string): void {
    this.bytes(field, textEncoder.encode(value));
  }

  message(field: number, inner: ProtoWriter): void {
    this.tag(field, WIRE_LEN);
    this.varint(BigInt(inner.length));
    for (const chunk of inner.chunks) this.push(chunk);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, offset);
      offset += chunk.byteLength;
    }
    return out;
  }
}

function checkInteger(value: number): number {
  if (!Number.isSafeInteger(value)) throw new RangeError(`expected a safe integer, got ${value}`);
  return value;
}

function writeTensor(t: TensorSpec): ProtoWriter {
  const expected = t.dims.reduce((n, d) => n * checkInteger(d), 1) * elementSize(t.dataType);
  if (t.rawData.byteLength !== expected) {
    throw new RangeError(`tensor ${t.name}: raw_data has ${t.rawData.byteLength} bytes, dims need ${expected}`);
  }
  const w = new ProtoWriter();
  // onnx.proto is proto2, where repeated scalars are unpacked: one tag per element.
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.dataType);
  w.string(8, t.name);
  w.bytes(9, t.rawData);
  return w;
}

function elementSize(dataType: TensorDataTypeCode): number {
  switch (dataType) {
    case TensorDataType.UINT8:
    case TensorDataType.INT8:
    case TensorDataType.BOOL:
      return 1;
    case TensorDataType.FLOAT16:
      return 2;
    case TensorDataType.FLOAT:
    case TensorDataType.INT32:
      return 4;
    case TensorDataType.INT64:
    case TensorDataType.DOUBLE:
      return 8;
  }
}

// AttributeProto.AttributeType
const ATTR_TYPE = { float: 1, int: 2, string: 3, tensor: 4, floats: 6, ints: 7 } as const;

function writeAttribute(a: AttributeSpec): ProtoWriter {
  const w = new ProtoWriter();
  w.string(1, a.name);
  switch (a.type) {
    case 'float':
      w.float(2, a.value);
      break;
    case 'int':
      w.int(3, a.value);
      break;
    case 'string':
      w.string(4, a.value);
      break;
    case 'tensor':
      w.message(5, writeTensor(a.value));
      break;
    case 'floats':
      for (const f of a.value) w.float(7, f);
      break;
    case 'ints':
      for (const i of a.value) w.int(8, i);
      break;
  }
  w.int(20, ATTR_TYPE[a.type]);
  return w;
}

function writeNode(n: NodeSpec): ProtoWriter {
  const w = new ProtoWriter();
  for (const input of n.inputs) w.string(1, input);
  for (const output of n.outputs) w.string(2, output);
  if (n.name !== undefined) w.string(3, n.name);
  w.string(4, n.opType);
  for (const a of n.attributes ?? []) w.message(5, writeAttribute(a));
  if (n.domain !== undefined && n.domain !== '') w.string(7, n.domain);
  return w;
}

function writeValueInfo(v: ValueInfoSpec): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.shape) {
    const dim = new ProtoWriter();
    if (typeof d === 'number') dim.int(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new ProtoWriter();
  tensorType.int(1, v.elemType);
  tensorType.message(2, shape);
  const type = new ProtoWriter();
  type.message(1, tensorType);

  const w = new ProtoWriter();
  w.string(1, v.name);
  w.message(2, type);
  return w;
}

function writeGraph(g: GraphSpec): ProtoWriter {
  const w = new ProtoWriter();
  for (const n of g.nodes) w.message(1, writeNode(n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, writeTensor(t));
  if (g.docString !== undefined) w.string(10, g.docString);
  for (const i of g.inputs) w.message(11, writeValueInfo(i));
  for (const o of g.outputs) w.message(12, writeValueInfo(o));
  return w;
}

/** Serializes a model to ONNX protobuf bytes; the same spec always yields the same bytes. */
export function encodeModel(model: ModelSpec): Uint8Array {
  const w = new ProtoWriter();
  w.int(1, model.irVersion);
  if (model.producerName !== undefined) w.string(2, model.producerName);
  if (model.producerVersion !== undefined) w.string(3, model.producerVersion);
  if (model.docString !== undefined) w.string(6, model.docString);
  w.message(7, writeGraph(model.graph));
  for (const op of model.opsetImports) {
    const opset = new ProtoWriter();
    if (op.domain !== '') opset.string(1, op.domain);
    opset.int(2, op.version);
    w.message(8, opset);
  }
  for (const [key, value] of model.metadata ?? []) {
    const entry = new ProtoWriter();
    entry.string(1, key);
    entry.string(2, value);
    w.message(14, entry);
  }
  return w.finish();
}

const LITTLE_ENDIAN_HOST = endianness() === 'LE';

/** float32 values as TensorProto raw_data (always little-endian, whatever the host). */
export function float32RawData(values: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN_HOST) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return out;
}

/** int64 values as TensorProto raw_data (little-endian). */
export function int64RawData(values: readonly (number | bigint)[]): Uint8Array {
  const out = new Uint8Array(values.length * 8);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setBigInt64(i * 8, typeof v === 'bigint' ? v : BigInt(checkInteger(v)), true));
  return out;
}

/** A float32 tensor from plain numbers (each rounded to float32). */
export function float32Tensor(name: string, dims: readonly number[], values: ArrayLike<number>): TensorSpec {
  return { name, dataType: TensorDataType.FLOAT, dims, rawData: float32RawData(Float32Array.from(values)) };
}

export function int64Tensor(name: string, dims: readonly number[], values: readonly (number | bigint)[]): TensorSpec {
  return { name, dataType: TensorDataType.INT64, dims, rawData: int64RawData(values) };
}
