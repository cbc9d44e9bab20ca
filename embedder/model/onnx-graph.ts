// The model graph: look up each token's row, sum the rows under the attention mask, L2-normalize.
import { DEFAULT_MODEL_ID as MODEL_ID } from '../../core/package-paths.js';
import { encodeModel, float32RawData, float32Tensor, int64Tensor, TensorDataType } from './onnx-writer.js';
import type { NodeSpec } from './onnx-writer.js';

/** Clamp for the norm, so all-unknown or empty text gives a zero vector instead of 0/0. */
const NORM_EPS = 1e-12;
export const ONNX_IR_VERSION = 8;
export const ONNX_OPSET = 18;

export function onnxModel(table: Float32Array, rows: number, dim: number, sourceLabel: string): Uint8Array {
  const nodes: NodeSpec[] = [
    { opType: 'Gather', name: 'lookup', inputs: ['embeddings', 'input_ids'], outputs: ['token_vectors'], attributes: [{ name: 'axis', type: 'int', value: 0 }] },
    { opType: 'Cast', name: 'mask_to_float', inputs: ['attention_mask'], outputs: ['mask_float'], attributes: [{ name: 'to', type: 'int', value: TensorDataType.FLOAT }] },
    { opType: 'Unsqueeze', name: 'mask_expand', inputs: ['mask_float', 'axis_2'], outputs: ['mask_3d'] },
    { opType: 'Mul', name: 'apply_mask', inputs: ['token_vectors', 'mask_3d'], outputs: ['masked_vectors'] },
    { opType: 'ReduceSum', name: 'sum_tokens', inputs: ['masked_vectors', 'axis_1'], outputs: ['summed'], attributes: [{ name: 'keepdims', type: 'int', value: 0 }] },
    { opType: 'ReduceL2', name: 'norm', inputs: ['summed', 'axis_1'], outputs: ['norm'], attributes: [{ name: 'keepdims', type: 'int', value: 1 }] },
    { opType: 'Max', name: 'clamp_norm', inputs: ['norm', 'eps'], outputs: ['norm_clamped'] },
    { opType: 'Div', name: 'normalize', inputs: ['summed', 'norm_clamped'], outputs: ['sentence_embedding'] },
  ];
  return encodeModel({
    irVersion: ONNX_IR_VERSION,
    opsetImports: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'ragway',
    producerVersion: '1',
    docString: `${MODEL_ID}: SIF-weighted static word embeddings from ${sourceLabel}`,
    graph: {
      name: MODEL_ID.replaceAll('-', '_'),
      docString:
        'sentence_embedding = normalize(sum_t mask_t * E[id_t]); E holds SIF-weighted GloVe vectors with the top principal component removed; an all-masked or all-[UNK] input gives zeros.',
      nodes,
      initializers: [
        { name: 'embeddings', dataType: TensorDataType.FLOAT, dims: [rows, dim], rawData: float32RawData(table) },
        int64Tensor('axis_1', [1], [1]),
        int64Tensor('axis_2', [1], [2]),
        float32Tensor('eps', [], [NORM_EPS]),
      ],
      inputs: [
        { name: 'input_ids', elemType: TensorDataType.INT64, shape: ['batch_size', 'sequence_length'] },
        { name: 'attention_mask', elemType: TensorDataType.INT64, shape: ['batch_size', 'sequence_length'] },
      ],
      outputs: [{ name: 'sentence_embedding', elemType: TensorDataType.FLOAT, shape: ['batch_size', dim] }],
    },
    metadata: [
      ['model_id', MODEL_ID],
      ['source', sourceLabel],
    ],
  });
}
