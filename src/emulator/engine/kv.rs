//! The KV cache of one engine: a token budget shared by sequences' private tokens and by
//! prefix blocks (512 tokens, named by a hash) that several sequences may share.
//!
//! A prefix block is pinned while any sequence uses it and becomes evictable (LRU) when the
//! last one lets go; evictable blocks still count as used until evicted, as in vLLM.

use std::collections::{BTreeMap, HashMap};

/// Tokens per prefix block (as in the Mooncake traces' `hash_ids`).
pub const BLOCK_TOKENS: u32 = 512;

#[derive(Debug)]
struct Block {
    refs: u32,
    /// LRU stamp while evictable (refs == 0).
    stamp: u64,
}

#[derive(Debug)]
pub struct KvCache {
    capacity: u64,
    private: u64,
    blocks: HashMap<u64, Block, foldhash::fast::FixedState>,
    evictable: BTreeMap<u64, u64>,
    clock: u64,
    evictions: u64,
}

impl KvCache {
    pub fn new(capacity: u64) -> Self {
        Self { capacity, private: 0, blocks: HashMap::default(), evictable: BTreeMap::new(), clock: 0, evictions: 0 }
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Tokens held: private tokens plus every cached block, pinned or evictable.
    pub fn used(&self) -> u64 {
        self.private + self.blocks.len() as u64 * u64::from(BLOCK_TOKENS)
    }

    /// Tokens that could be handed out now, counting evictable blocks as free.
    pub fn available(&self) -> u64 {
        let pinned = self.blocks.len() - self.evictable.len();
        self.capacity.saturating_sub(self.private + pinned as u64 * u64::from(BLOCK_TOKENS))
    }

    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Number of leading `hashes` present in the cache.
    pub fn cached_prefix(&self, hashes: &[u64]) -> usize {
        hashes.iter().take_while(|h| self.blocks.contains_key(h)).count()
    }

    /// Takes `n` private tokens, evicting LRU blocks if needed. False if they cannot fit.
    pub fn alloc(&mut self, n: u64) -> bool {
        if self.available() < n {
            return false;
        }
        while self.capacity - self.used() < n {
            let (&stamp, &hash) = self.evictable.iter().next().expect("available() counted it");
            self.evictable.remove(&stamp);
            self.blocks.remove(&hash);
            self.evictions += 1;
        }
        self.private += n;
        true
    }

    pub fn free(&mut self, n: u64) {
        debug_assert!(n <= self.private, "freeing more than held");
        self.private -= n.min(self.private);
    }

    /// Pins a block already in the cache.
    pub fn pin(&mut self, hash: u64) {
        let b = self.blocks.get_mut(&hash).expect("pin of a cached block");
        if b.refs == 0 {
            self.evictable.remove(&b.stamp);
        }
        b.refs += 1;
    }

    /// Turns `BLOCK_TOKENS` private tokens into the shared block `hash`, pinned once.
    /// If another sequence published the same block meanwhile, the private copy is freed.
    pub fn publish(&mut self, hash: u64) {
        self.free(u64::from(BLOCK_TOKENS));
        match self.blocks.get(&hash) {
            Some(_) => self.pin(hash),
            None => {
                self.blocks.insert(hash, Block { refs: 1, stamp: 0 });
            }
        }
    }

    /// Releases one pin; the block becomes evictable at the back of the LRU order.
    pub fn unpin(&mut self, hash: u64) {
        let b = self.blocks.get_mut(&hash).expect("unpin of a cached block");
        b.refs -= 1;
        if b.refs == 0 {
            self.clock += 1;
            b.stamp = self.clock;
            self.evictable.insert(self.clock, hash);
        }
    }

    /// Marks a cached, pinned block as recently used (a hit refreshes its LRU position on release).
    pub fn contains(&self, hash: u64) -> bool {
        self.blocks.contains_key(&hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_evicts_oldest_unpinned_block_first() {
        let mut kv = KvCache::new(3 * u64::from(BLOCK_TOKENS));
        for h in [1, 2, 3] {
            assert!(kv.alloc(u64::from(BLOCK_TOKENS)));
            kv.publish(h);
        }
        kv.unpin(2);
        kv.unpin(1);
        kv.unpin(3);
        assert_eq!(kv.used(), 3 * u64::from(BLOCK_TOKENS));
        // Reuse block 2: pinned again, so it must survive the next eviction.
        kv.pin(2);
        assert!(kv.alloc(u64::from(BLOCK_TOKENS)));
        assert!(!kv.contains(1) && kv.contains(2) && kv.contains(3));
        assert!(kv.alloc(u64::from(BLOCK_TOKENS)));
        assert!(!kv.contains(3) && kv.contains(2));
        assert!(!kv.alloc(1), "pinned block and private tokens fill the cache");
        assert_eq!(kv.evictions(), 2);
    }
}
