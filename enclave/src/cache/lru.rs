//! Least-recently-used bookkeeping: [`Recency`], the recency list that [`super::SecretCache`]
//! keeps beside its map, and [`LruMap`], the same list over a plain map, for the public values
//! the service derives from cached keys (addresses).

use std::collections::HashMap;

/// "No node", for the links of [`Recency`].
const NIL: usize = usize::MAX;

/// A doubly linked list of keys, most recently used first, whose nodes live in a vector and
/// link by index (no pointers, no `unsafe`); removed nodes are reused. Moving a node to the front
/// and removing one take constant time.
pub(super) struct Recency<K> {
    nodes: Vec<Node<K>>,
    /// Indices of unused nodes.
    free: Vec<usize>,
    /// The most recently used node.
    head: usize,
    /// The least recently used node.
    pub(super) tail: usize,
}

struct Node<K> {
    key: K,
    /// The next more recently used node.
    newer: usize,
    /// The next less recently used node.
    older: usize,
}

impl<K> Recency<K> {
    pub(super) fn new() -> Self {
        Self {
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    /// A new node for `key`, at the front.
    pub(super) fn push_front(&mut self, key: K) -> usize {
        let node = Node {
            key,
            newer: NIL,
            older: NIL,
        };
        let index = match self.free.pop() {
            Some(index) => {
                if let Some(slot) = self.nodes.get_mut(index) {
                    *slot = node;
                }
                index
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        self.link_front(index);
        index
    }

    /// Moves `index` to the front: its entry was just used.
    pub(super) fn touch(&mut self, index: usize) {
        if self.head != index {
            self.unlink(index);
            self.link_front(index);
        }
    }

    /// Removes `index` from the list and frees it.
    pub(super) fn remove(&mut self, index: usize) {
        self.unlink(index);
        self.free.push(index);
        if self.free.len() == self.nodes.len() {
            // Empty: give the memory back (a burst of keys may have grown it).
            self.nodes = Vec::new();
            self.free = Vec::new();
        }
    }

    /// The node `index`'s key and the next more recently used node.
    pub(super) fn get(&self, index: usize) -> Option<(&K, usize)> {
        self.nodes.get(index).map(|node| (&node.key, node.newer))
    }

    fn link_front(&mut self, index: usize) {
        let old_head = self.head;
        if let Some(node) = self.nodes.get_mut(index) {
            node.newer = NIL;
            node.older = old_head;
        }
        match self.nodes.get_mut(old_head) {
            Some(head) => head.newer = index,
            None => self.tail = index,
        }
        self.head = index;
    }

    fn unlink(&mut self, index: usize) {
        let Some(&Node { newer, older, .. }) = self.nodes.get(index) else {
            return;
        };
        match self.nodes.get_mut(newer) {
            Some(node) => node.older = older,
            None => self.head = older,
        }
        match self.nodes.get_mut(older) {
            Some(node) => node.newer = newer,
            None => self.tail = newer,
        }
        if let Some(node) = self.nodes.get_mut(index) {
            node.newer = NIL;
            node.older = NIL;
        }
    }
}

/// A map bounded in entries that drops its least recently used entry when full: for public
/// values derived from cached keys (addresses), which are cheap to keep and costly to recompute.
/// Lookups and inserts take constant time.
pub(crate) struct LruMap<K, V> {
    capacity: usize,
    /// Each value with its node in `recency`.
    entries: HashMap<K, (V, usize)>,
    recency: Recency<K>,
}

impl<K, V> std::fmt::Debug for LruMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LruMap")
            .field("capacity", &self.capacity)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl<K: Clone + Eq + std::hash::Hash, V> LruMap<K, V> {
    /// An empty map of at most `capacity` entries (0: it holds nothing).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::new(),
            recency: Recency::new(),
        }
    }

    /// The value for `key`, which becomes the most recently used.
    pub(crate) fn get(&mut self, key: &K) -> Option<&V> {
        let (value, node) = self.entries.get(key)?;
        self.recency.touch(*node);
        Some(value)
    }

    /// Inserts or replaces the value for `key`, the most recently used, and drops the least
    /// recently used entry if the map is over its capacity.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        if let Some((old, node)) = self.entries.get_mut(&key) {
            *old = value;
            let node = *node;
            self.recency.touch(node);
            return;
        }
        let node = self.recency.push_front(key.clone());
        self.entries.insert(key, (value, node));
        if self.entries.len() > self.capacity {
            let tail = self.recency.tail;
            if let Some((oldest, _)) = self.recency.get(tail) {
                let oldest = oldest.clone();
                self.entries.remove(&oldest);
            }
            self.recency.remove(tail);
        }
    }
}

#[cfg(test)]
impl<K> Recency<K> {
    /// Nodes in use (allocated and not freed).
    pub(super) fn live_nodes(&self) -> usize {
        self.nodes.len() - self.free.len()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The next key of a pseudo-random sequence (xorshift64 on `state`): one lookup in three
    /// goes to the hot keys 0..4, the others to any of 0..40.
    pub(in crate::cache) fn hot_or_cold_key(state: &mut u64) -> u8 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let key = if state.is_multiple_of(3) {
            (*state >> 8) % 4
        } else {
            (*state >> 8) % 40
        };
        key as u8
    }

    /// The address map against a reference model of exact LRU, with replaced values.
    #[test]
    fn lru_map_drops_the_least_recently_used_entry() {
        const CAPACITY: usize = 8;
        let mut map = LruMap::new(CAPACITY);
        // (key, value), most recently used last.
        let mut model: Vec<(u8, u32)> = Vec::new();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for step in 0..20_000u32 {
            let key = hot_or_cold_key(&mut state);
            let expected = model.iter().position(|&(k, _)| k == key);
            assert_eq!(
                map.get(&key).copied(),
                expected.and_then(|at| model.get(at)).map(|&(_, v)| v),
                "step {step}"
            );
            match expected {
                Some(at) => {
                    let entry = model.remove(at);
                    model.push(entry);
                }
                None => {
                    map.insert(key, step);
                    if model.len() == CAPACITY {
                        model.remove(0);
                    }
                    model.push((key, step));
                }
            }
            if step.is_multiple_of(7) {
                // Replacing a value keeps one entry and makes it the most recent.
                let (key, _) = model.remove(0);
                map.insert(key, step + 1);
                model.push((key, step + 1));
            }
            assert_eq!(map.entries.len(), model.len());
        }
        assert_eq!(map.recency.live_nodes(), map.entries.len());
        let mut off = LruMap::new(0);
        off.insert(1u8, 1u32);
        assert_eq!(off.get(&1), None);
    }
}
