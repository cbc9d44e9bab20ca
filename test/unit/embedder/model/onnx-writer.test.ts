// The hand-written ONNX encoder: onnxruntime-node must accept what it writes and compute the
// right values, and the same spec must always give the same bytes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { encodeModel, float32Tensor, int64Tensor, TensorDataType } from '../../../../embedder/model/onnx-writer.js';
import type { ModelSpec } from '../../../../embedder/model/onnx-writer.js';

// y = Add(x, b); z = ReduceSum(LeakyRelu(y), axes=[-1]); g = Gather(x, [2, 0], axis=-1)
// Covers float/int attributes, a negative int64 both as a varint attribute and in raw_data,
// symbolic and fixed dims, a scalar-free initializer list and several outputs.
function tinyModel(): ModelSpec {
  return {
    irVersion: 8,
    opsetImports: [{ domain: '', version: 18 }],
    producerName: 'ragway-test',
    graph: {
      name: 'tiny',
      nodes: [
        { opType: 'Add', inputs: ['x', 'b'], outputs: ['y'] },
        { opType: 'LeakyRelu', inputs: ['y'], outputs: ['leaky'], attributes: [{ name: 'alpha', type: 'float', value: 0.5 }] },
        { opType: 'ReduceSum', inputs: ['leaky', 'axes'], outputs: ['z'], attributes: [{ name: 'keepdims', type: 'int', value: 0 }] },
        { opType: 'Gather', inputs: ['x', 'picks'], outputs: ['g'], attributes: [{ name: 'axis', type: 'int', value: -1 }] },
      ],
      initializers: [float32Tensor('b', [3], [1, -10, 3]), int64Tensor('axes', [1], [-1]), int64Tensor('picks', [2], [2, 0])],
      inputs: [{ name: 'x', elemType: TensorDataType.FLOAT, shape: ['batch', 3] }],
      outputs: [
        { name: 'y', elemType: TensorDataType.FLOAT, shape: ['batch', 3] },
        { name: 'z', elemType: TensorDataType.FLOAT, shape: ['batch'] },
        { name: 'g', elemType: TensorDataType.FLOAT, shape: ['batch', 2] },
      ],
    },
    metadata: [['purpose', 'test']],
  };
}

describe('onnx-writer', () => {
  it('writes a model that onnxruntime-node loads and runs correctly', async () => {
    const session = await ort.InferenceSession.create(encodeModel(tinyModel()));
    try {
      assert.deepEqual(session.inputNames, ['x']);
      assert.deepEqual(session.outputNames, ['y', 'z', 'g']);
      const x = new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
      const out = await session.run({ x });
      assert.deepEqual(Array.from(out['y']?.data as Float32Array), [2, -8, 6, 5, -5, 9]);
      // LeakyRelu halves the negatives: 2 - 4 + 6, 5 - 2.5 + 9
      assert.deepEqual(Array.from(out['z']?.data as Float32Array), [4, 11.5]);
      assert.deepEqual(Array.from(out['g']?.data as Float32Array), [3, 1, 6, 4]);
      assert.deepEqual(out['g']?.dims, [2, 2]);
    } finally {
      await session.release();
    }
  });

  it('is byte-for-byte deterministic', () => {
    const a = encodeModel(tinyModel());
    const b = encodeModel(tinyModel());
    assert.ok(a.byteLength > 0);
    assert.deepEqual(Buffer.from(a), Buffer.from(b));
    // field 1 (ir_version, varint) comes first: tag 0x08, value 8
    assert.deepEqual(Array.from(a.subarray(0, 2)), [0x08, 0x08]);
  });

  it('rejects raw data that does not match the dims', () => {
    const spec = tinyModel();
    const bad: ModelSpec = {
      ...spec,
      graph: { ...spec.graph, initializers: [{ name: 'b', dataType: TensorDataType.FLOAT, dims: [4], rawData: new Uint8Array(12) }] },
    };
    assert.throws(() => encodeModel(bad), RangeError);
  });
});
