//! Kafka's `max.connections.per.ip`: open connections per client address, counted across
//! every shard. A connection over the limit is closed as soon as it is accepted.
//!
//! One lock per accepted and per closed connection (not per request); when the limit is
//! unlimited (the default) nothing is counted at all.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Open connections per address, with the limit.
#[derive(Debug)]
pub struct PerIpLimit {
    /// `usize::MAX`: unlimited.
    max: AtomicUsize,
    open: Mutex<BTreeMap<IpAddr, usize>>,
}

/// The broker's counts.
pub static CONNECTIONS_PER_IP: PerIpLimit = PerIpLimit::new(usize::MAX);

/// Why a connection was refused: its address already has this many open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooMany(pub usize);

impl PerIpLimit {
    pub const fn new(max: usize) -> Self {
        PerIpLimit {
            max: AtomicUsize::new(max),
            open: Mutex::new(BTreeMap::new()),
        }
    }

    /// Sets the limit (`None`: unlimited). At start-up, before any connection.
    pub fn set_max(&self, max: Option<usize>) {
        self.max.store(max.unwrap_or(usize::MAX), Ordering::Relaxed);
    }

    /// Counts a new connection from `ip`, or refuses it if `ip` is at the limit.
    pub fn admit(&'static self, ip: IpAddr) -> Result<IpSlot, TooMany> {
        let max = self.max.load(Ordering::Relaxed);
        if max == usize::MAX {
            return Ok(IpSlot(None));
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            let refused = TooMany(*count);
            if *count == 0 {
                open.remove(&ip);
            }
            return Err(refused);
        }
        *count += 1;
        Ok(IpSlot(Some((self, ip))))
    }

    /// Open connections from `ip` (counted only when there is a limit).
    pub fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }
}

/// A connection counted against its address; uncounted when dropped (connection closed).
#[derive(Debug)]
pub struct IpSlot(Option<(&'static PerIpLimit, IpAddr)>);

impl Drop for IpSlot {
    fn drop(&mut self) {
        let Some((limit, ip)) = self.0 else { return };
        let mut open = limit.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max: usize) -> &'static PerIpLimit {
        Box::leak(Box::new(PerIpLimit::new(max)))
    }

    #[test]
    fn refuses_over_the_limit_per_address() {
        let limit = limit(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.1".parse().unwrap();
        let first = limit.admit(a).unwrap();
        let _second = limit.admit(a).unwrap();
        assert_eq!(limit.admit(a).unwrap_err(), TooMany(2));
        let _other = limit.admit(b).expect("another address has its own count");
        drop(first);
        assert_eq!(limit.open(a), 1);
        let _third = limit.admit(a).expect("room again after one closed");
    }

    #[test]
    fn unlimited_counts_nothing() {
        let limit = limit(usize::MAX);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let slots: Vec<_> = (0..1000).map(|_| limit.admit(ip).unwrap()).collect();
        assert_eq!(limit.open(ip), 0);
        drop(slots);
    }

    #[test]
    fn a_zero_limit_leaves_no_entry_behind() {
        let limit = limit(0);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(limit.admit(ip).unwrap_err(), TooMany(0));
        assert!(limit.open.lock().unwrap().is_empty());
    }
}
