//! Kafka node ids and raft-rs ids: raft-rs reserves 0 for "nobody", and Kafka's first node is
//! usually 0, so a node's raft id is its node id plus one.

/// The raft id of node `node_id` (node ids are checked non-negative by the settings).
pub fn raft_id_of(node_id: i32) -> u64 {
    u64::from(node_id.unsigned_abs()) + 1
}

/// The node id of raft id `raft_id` (one of ours, so at least 1).
pub fn node_of(raft_id: u64) -> i32 {
    i32::try_from(raft_id.saturating_sub(1)).unwrap_or(i32::MAX)
}

/// 16 random bytes (an incarnation id): the kernel's randomness, or the clock and process id
/// should /dev/urandom be unreadable (the id need only differ from the previous process's).
pub fn random_id() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if read.is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos ^ (u128::from(std::process::id()) << 96)).to_be_bytes();
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_zero_is_not_raft_s_nobody() {
        assert_eq!(raft_id_of(0), 1);
        for node in [0, 1, 7, i32::MAX] {
            assert_eq!(node_of(raft_id_of(node)), node);
        }
    }
}
