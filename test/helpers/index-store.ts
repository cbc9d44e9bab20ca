// IndexStore instances for unit tests: each in a fresh temp folder, no background
// snapshots (autoSaveMs 0) so a test decides when state reaches the disk.
import { IndexStore, type IndexStoreOptions } from '../../shards/index-store.js';
import { tempDirs } from './temp-dirs.js';

export const STORE_DIM = 16;

/** A fresh folder for a store (not yet created). */
export const freshDir = tempDirs('index-store');

export function openStore(overrides: Partial<IndexStoreOptions> = {}): IndexStore {
  return IndexStore.open({ dataDir: freshDir(), dim: STORE_DIM, space: 'cosine', autoSaveMs: 0, ...overrides });
}
