import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessShardClient } from '../../../retriever/in-process-shard-client.js';
import { IndexStore } from '../../../shards/index-store.js';
import { CONTRACT_DIM, CONTRACT_SPACE, shardClientContract } from './shard-client-contract.js';

shardClientContract('InProcessShardClient over IndexStore', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'ragway-inproc-'));
  const store = IndexStore.open({ dataDir, dim: CONTRACT_DIM, space: CONTRACT_SPACE, autoSaveMs: 0 });
  return {
    client: new InProcessShardClient(store, { label: 'shard-0' }),
    cleanup: async () => {
      store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
});
