/**
 * Which ItemStore (store/items.ts) a broker's host uses: the shared store's when it has one (bound to
 * the store key), so every replica sees the same API keys and proxy passwords; else the state directory's file.
 *
 * Owns: that choice. Must not: know what an item means.
 */
import { FileItems, type ItemStore } from '../store/items.js'
import type { Broker } from './broker.js'

export async function itemsOf(broker: Broker): Promise<ItemStore> {
  const chosen = await broker.backend()
  return chosen.shared ? chosen.shared.items : new FileItems(broker.paths)
}
