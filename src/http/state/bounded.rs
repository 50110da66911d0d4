//! A map that never holds more than a fixed number of entries: past its capacity it forgets the
//! entry inserted first. The state's routing memories ([`super::turns`], [`super::minted`]) are
//! preferences learned from traffic, never a source of truth, so each must stay bounded however
//! long the daemon runs; this is the one place that rule is written.
//!
//! Age is the order of first insertion. Replacing the value of a key already held keeps the
//! key's place, so the order queue holds each key once and never more entries than the map. A
//! map whose entries also expire stores the time in its values and calls
//! [`Bounded::expire_while`] with its own test; the map itself keeps no clock, so a map that
//! needs none (the minted reasoning, a few bytes an entry) pays nothing for one.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// At most `capacity` entries, oldest forgotten first (see the module docs).
#[derive(Debug)]
pub struct Bounded<K, V> {
    /// Most entries held; an insert past it forgets the oldest first.
    capacity: usize,
    /// The entries.
    map: HashMap<K, V>,
    /// Keys in the order they were first inserted, oldest at the front: what to forget next.
    order: VecDeque<K>,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    /// An empty map holding at most `capacity` entries. Nothing is allocated until the first
    /// insert.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The value held for `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    /// Holds `value` for `key`. A key already held gets the new value and keeps its age; a new
    /// key first makes room, so neither the map nor the queue ever holds more than the
    /// capacity, and the queue never grows past its first allocation of that size.
    pub fn insert(&mut self, key: K, value: V) {
        if let Some(held) = self.map.get_mut(&key) {
            *held = value;
            return;
        }
        while self.order.len() >= self.capacity {
            if !self.forget_oldest() {
                break;
            }
        }
        if self.capacity == 0 {
            return;
        }
        self.order.push_back(key.clone());
        self.map.insert(key, value);
    }

    /// Forgets entries from the oldest on while `stale` holds for the oldest one's value.
    pub fn expire_while(&mut self, stale: impl Fn(&V) -> bool) {
        while self
            .order
            .front()
            .and_then(|k| self.map.get(k))
            .is_some_and(&stale)
        {
            self.forget_oldest();
        }
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Forgets the oldest entry; false when there was none.
    fn forget_oldest(&mut self) -> bool {
        let Some(old) = self.order.pop_front() else {
            return false;
        };
        self.map.remove(&old);
        true
    }

    /// The map's and the queue's allocated sizes, for the tests that check the bound holds in
    /// memory as well as in count.
    #[cfg(test)]
    pub fn capacities(&self) -> (usize, usize) {
        (self.map.capacity(), self.order.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_its_capacity_and_forgets_the_oldest_first() {
        let mut m = Bounded::new(3);
        for k in 1..=5 {
            m.insert(k, k * 10);
        }
        assert_eq!(m.len(), 3);
        assert_eq!(m.get(&1), None);
        assert_eq!(m.get(&2), None);
        assert_eq!(
            (m.get(&3), m.get(&4), m.get(&5)),
            (Some(&30), Some(&40), Some(&50))
        );
        let (map, order) = m.capacities();
        assert!(order >= 3 && map >= 3, "{map} {order}");
    }

    #[test]
    fn a_replaced_value_keeps_its_age() {
        let mut m = Bounded::new(2);
        m.insert("a", 1);
        m.insert("b", 2);
        m.insert("a", 3);
        assert_eq!(m.get("a"), Some(&3));
        assert_eq!(m.len(), 2, "a key replaced is still one entry");
        m.insert("c", 4);
        assert_eq!(m.get("a"), None, "a was inserted first, so it goes first");
        assert_eq!((m.get("b"), m.get("c")), (Some(&2), Some(&4)));
    }

    #[test]
    fn expiry_stops_at_the_first_fresh_entry() {
        let mut m = Bounded::new(10);
        for (k, age) in [("a", 9), ("b", 7), ("c", 2), ("d", 8)] {
            m.insert(k, age);
        }
        m.expire_while(|age| *age > 5);
        assert_eq!(m.get("a"), None);
        assert_eq!(m.get("b"), None);
        assert_eq!(m.get("c"), Some(&2));
        assert_eq!(
            m.get("d"),
            Some(&8),
            "behind a fresh entry: left for a later sweep"
        );
        m.expire_while(|_| true);
        assert_eq!(m.len(), 0);
    }

    #[test]
    fn a_full_queue_does_not_grow_past_its_first_allocation() {
        let cap = 1 << 10;
        let mut m = Bounded::new(cap);
        for k in 0..cap {
            m.insert(k, ());
        }
        let (_, first_order) = m.capacities();
        for k in cap..10 * cap {
            m.insert(k, ());
        }
        assert_eq!(m.len(), cap);
        let (_, order) = m.capacities();
        // The map's own growth under churn is the hash table's; minted's test checks it at
        // that map's capacity.
        assert_eq!(order, first_order, "the queue never grows once full");
    }

    #[test]
    fn capacity_zero_holds_nothing() {
        let mut m = Bounded::new(0);
        m.insert(1, 1);
        assert_eq!(m.len(), 0);
        assert_eq!(m.get(&1), None);
    }
}
