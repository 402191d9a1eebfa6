//! A pipeline's connections by id: a short list sorted by id instead of a `BTreeMap`, whose first
//! node holds room for eleven entries (192 bytes) where a session nearly always has one connection
//! (two while a reconnect replaces it).

/// Entries `(conn, value)` in ascending `conn` order, as a `BTreeMap` iterates them.
#[derive(Debug)]
pub(super) struct ConnMap<V>(Vec<(u64, V)>);

impl<V> Default for ConnMap<V> {
    fn default() -> Self {
        ConnMap(Vec::new())
    }
}

impl<V> ConnMap<V> {
    fn find(&self, conn: u64) -> Result<usize, usize> {
        self.0.binary_search_by_key(&conn, |(k, _)| *k)
    }

    /// Inserts (or replaces) `conn`'s value; room for exactly one more when full.
    pub(super) fn insert(&mut self, conn: u64, v: V) {
        match self.find(conn) {
            Ok(i) => self.0[i].1 = v,
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, (conn, v));
            }
        }
    }

    pub(super) fn contains_key(&self, conn: u64) -> bool {
        self.find(conn).is_ok()
    }

    pub(super) fn get(&self, conn: u64) -> Option<&V> {
        self.find(conn).ok().map(|i| &self.0[i].1)
    }

    pub(super) fn get_mut(&mut self, conn: u64) -> Option<&mut V> {
        self.find(conn).ok().map(|i| &mut self.0[i].1)
    }

    pub(super) fn remove(&mut self, conn: u64) -> Option<V> {
        self.find(conn).ok().map(|i| self.0.remove(i).1)
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut V)> {
        self.0.iter_mut().map(|(k, v)| (*k, v))
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.0.iter_mut().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::ConnMap;

    /// Kept in id order whatever the insertion order, replaced in place, removed by id.
    #[test]
    fn entries_stay_in_id_order() {
        let mut m = ConnMap::default();
        for (k, v) in [(5, "e"), (1, "a"), (3, "c"), (3, "C")] {
            m.insert(k, v);
        }
        assert_eq!(m.values().copied().collect::<Vec<_>>(), ["a", "C", "e"]);
        assert_eq!(m.remove(1), Some("a"));
        assert_eq!(m.remove(1), None);
        assert!(m.contains_key(5) && !m.contains_key(1));
        *m.get_mut(5).expect("5") = "E";
        assert_eq!(m.get(5), Some(&"E"));
        assert_eq!(m.iter_mut().map(|(k, _)| k).collect::<Vec<_>>(), [3, 5]);
    }
}
