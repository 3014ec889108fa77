//! The deferral queue of one pool: batch work waiting for its price to clear, served in order of
//! value density (value per engine-second), highest first. Pure bookkeeping; the gateway holds
//! one per pool and each waiting request asks whether it is at the head.

#[derive(Debug, Default, Clone)]
pub struct DeferQueue {
    /// (value density, arrival number, id), kept sorted: densest first, then oldest.
    entries: Vec<(f64, u64, u64)>,
    arrivals: u64,
}

impl DeferQueue {
    pub fn push(&mut self, id: u64, density: f64) {
        self.arrivals += 1;
        let e = (density, self.arrivals, id);
        let at = self.entries.partition_point(|x| x.0 > density || (x.0 == density && x.1 < e.1));
        self.entries.insert(at, e);
    }

    pub fn remove(&mut self, id: u64) {
        self.entries.retain(|e| e.2 != id);
    }

    /// The request to dispatch next.
    pub fn head(&self) -> Option<u64> {
        self.entries.first().map(|e| e.2)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn densest_first_then_oldest() {
        let mut q = DeferQueue::default();
        q.push(1, 0.5);
        q.push(2, 2.0);
        q.push(3, 2.0);
        q.push(4, 1.0);
        assert_eq!(q.head(), Some(2));
        q.remove(2);
        assert_eq!(q.head(), Some(3));
        q.remove(3);
        assert_eq!(q.head(), Some(4));
        q.remove(4);
        q.remove(1);
        assert!(q.is_empty());
    }
}
